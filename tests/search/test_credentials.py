"""A database password never reaches a file, a log line, a tracker or the terminal: sweeps against a
real PostgreSQL role that logs in with a password (scram-sha-256), the password given in the URL, by
an interpolation, in OPTUNA_STORAGE, or left to libpq (PGPASSFILE), and jobs in other processes
(launcher=joblib). Every file under the working
directory (run and sweep records, Hydra's configs, checkpoints, CSV logs, MLflow's store and
artifacts) and every line printed is searched for it, and the study really holds the trials."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.search.conftest import SWEEPER_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres")]  # pytest -n: one server, one worker

BIGMODEL = shutil.which("bigmodel") or "bigmodel"
QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=1"]  # fmt: skip


def bigmodel(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [BIGMODEL, *args], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )
    return done.returncode, done.stdout + done.stderr


def files_holding(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.parametrize("spelling", ["url", "interpolation", "OPTUNA_STORAGE", "PGPASSFILE", "joblib"])
def test_a_storage_password_reaches_no_file_log_tracker_or_terminal(tmp_path, postgres_password_login, spelling):
    import optuna

    user, password, port, database = postgres_password_login
    where = f"127.0.0.1:{port}/{database}"
    url = f"postgresql://{user}:{password}@{where}"
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    storage = {
        "url": [f"hparams_search.storage={url}"],
        # jobs in other processes open the study with the real URL, from the sweep's environment
        "joblib": [f"hparams_search.storage={url}", "launcher=joblib", "hydra.sweeper.n_jobs=2"],
        "interpolation": [f"hparams_search.storage=postgresql://{user}:${{oc.env:SWEEP_DB_PASSWORD}}@{where}"],
        "OPTUNA_STORAGE": [],
        "PGPASSFILE": [f"hparams_search.storage=postgresql://{user}@{where}"],
    }[spelling]
    if spelling == "interpolation":
        env["SWEEP_DB_PASSWORD"] = password
    if spelling == "OPTUNA_STORAGE":
        env["OPTUNA_STORAGE"] = url
    if spelling == "PGPASSFILE":
        passfile = elsewhere / "pgpass"
        passfile.write_text(f"127.0.0.1:{port}:{database}:{user}:{password}\n")
        passfile.chmod(0o600)
        env["PGPASSFILE"] = str(passfile)
    name = f"cred-{spelling.lower()}"
    logger = ["logger=[csv,mlflow]"] if spelling == "url" else []
    args = ["train", "-m", "hparams_search=optuna", f"run_name={name}", "hydra.sweeper.n_trials=2", *QUICK, *logger]
    code, out = bigmodel([*args, *storage], work, env)
    assert code == 0, out[-3000:]
    sweep = work / "multirun" / "train" / name
    assert "Launching" in out and (sweep / "0" / "checkpoints" / "last.ckpt").is_file()
    if logger:
        assert any(work.glob("mlruns/*/*/artifacts/run.json")) or any(work.rglob("artifacts/run.json"))
    listed = [bigmodel(["runs", "multirun"], work, env)[1], bigmodel(["report", str(sweep)], work, env)[1]]
    # the sweep used the database: its study (named after the sweep) holds the two trials
    study = optuna.load_study(study_name=name, storage=url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert password not in out and not any(password in text for text in listed)
    assert files_holding(work, password) == []
    assert all(t.intermediate_values for t in study.trials)  # each job reported to its trial
    if spelling != "PGPASSFILE":  # the URL is recorded, masked
        assert f"{user}:***@{where}" in (sweep / "0" / "run.json").read_text()


def test_a_database_that_refuses_the_password_is_one_line_without_it(tmp_path, postgres_password_login):
    user, _, port, database = postgres_password_login
    wrong = "Wrong-pw-51xq8"
    url = f"postgresql://{user}:{wrong}@127.0.0.1:{port}/{database}"
    code, out = bigmodel(
        ["train", "-m", "hparams_search=optuna", "run_name=refused", f"hparams_search.storage={url}", *QUICK],
        tmp_path,
        {},
    )
    assert code == 2 and "Traceback" not in out, out[-3000:]
    assert f"hparams_search.storage=postgresql://{user}:***@127.0.0.1:{port}/{database} cannot be opened" in out
    assert wrong not in out and SWEEPER_PASSWORD not in out
    assert files_holding(tmp_path, wrong) == []
