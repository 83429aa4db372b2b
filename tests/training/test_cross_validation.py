"""cv=K: one job trains every fold (each a run of its own in <run>/fold_<k>), reports per fold and
mean, sd and 95% interval of every metric, and returns the means (a sweep optimises them); killed in
a later fold and resumed, it keeps the finished folds and ends where the job left alone ends; a
sweep over data.fold=range(K) is summed up per configuration by `bigmodel report`."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch
import yaml

from bigmodel_cli.training.cross_validation import t_975
from tests.support.faults import ForkServer, fault_overrides

QUICK = [
    "accelerator=cpu",
    "deterministic=true",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=3",
    "trainer.limit_test_batches=2",
    "callbacks.last_checkpoint.every_n_steps=2",
]


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_t_quantiles_match_students_table():
    assert t_975(1) == 12.706 and t_975(9) == 2.262
    assert t_975(40) == pytest.approx(2.021, abs=2e-3) and t_975(120) == pytest.approx(1.980, abs=2e-3)


@pytest.mark.slow
def test_cv_trains_every_fold_and_reports_their_statistics(cli, in_tmp_cwd):
    code, out, err = cli("train", "cv=3", *QUICK, "run_name=cv")
    assert code == 0, err
    run = in_tmp_cwd / "outputs" / "train" / "cv"
    cv = read(run / "cv.json")
    assert "cross-validation: 3 folds" in out
    folds = [read(run / f"fold_{k}" / "metrics.json") for k in range(3)]
    assert cv["folds"] == folds
    for k in range(3):  # each fold trained as data.folds=3 data.fold=k, in its own directory
        saved = yaml.safe_load((run / f"fold_{k}" / ".hydra" / "config.yaml").read_text())
        assert (saved["data"]["folds"], saved["data"]["fold"], saved["cv"]) == (3, k, None)
        assert (run / f"fold_{k}" / "checkpoints" / "last.ckpt").is_file()
    assert len({f["val/loss"] for f in folds}) == 3, "the folds validated on the same samples"
    assert len({f["test/loss"] for f in folds}) == 3, "the folds trained on the same samples"
    job = read(run / "metrics.json")
    for name in ("val/acc", "val/loss", "test/acc"):
        values = [f[name] for f in folds]
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        assert job[name] == pytest.approx(mean, rel=1e-12)
        stats = cv["summary"][name]
        assert (stats["mean"], stats["sd"]) == (pytest.approx(mean), pytest.approx(sd))
        assert stats["ci95_high"] - mean == pytest.approx(4.303 * sd / 3**0.5)
    assert read(run / "run.json")["metrics"]["val/acc"] == pytest.approx(job["val/acc"])
    # A fold's checkpoint validates on its own fold, not on the val split of a run without folds.
    best = run / "fold_1" / "checkpoints" / "best.ckpt"
    code, _, err = cli("validate", f"ckpt_path={best}", "accelerator=cpu", "trainer.limit_val_batches=3")
    assert code == 0, err
    (validated,) = (in_tmp_cwd / "outputs" / "validate").glob("*/metrics.json")
    assert read(validated)["val/acc"] == folds[1]["val/acc_best"]


@pytest.fixture(scope="module")
def forks():
    server = ForkServer()
    yield server
    server.close()


@pytest.mark.slow
def test_a_cv_job_killed_in_a_later_fold_resumes_to_the_uninterrupted_result(forks, cli, in_tmp_cwd):
    forks.start(in_tmp_cwd, ["train", "cv=3", *QUICK, *fault_overrides(3, fold=1), "run_name=cut"])
    code, _, err = cli("train", "cv=3", *QUICK, "run_name=whole")
    assert code == 0, err
    assert forks.wait() == -9
    cut, whole = (in_tmp_cwd / "outputs" / "train" / name for name in ("cut", "whole"))
    assert (cut / "fold_0" / "metrics.json").is_file() and not (cut / "fold_1" / "metrics.json").exists()
    first = (cut / "fold_0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    code, out, err = cli("train", f"resume={cut}", "~callbacks.fault")
    assert code == 0, err
    assert "cv: fold 0" not in out, "the finished fold trained again"
    assert (cut / "fold_0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns == first
    assert read(cut / "cv.json") == read(whole / "cv.json")
    for k in range(3):
        a, b = (torch.load(r / f"fold_{k}" / "checkpoints" / "last.ckpt", weights_only=True) for r in (cut, whole))
        assert all(torch.equal(a["state_dict"][n], b["state_dict"][n]) for n in a["state_dict"]), f"fold {k}"


@pytest.mark.slow
def test_report_sums_up_a_sweep_over_the_folds(cli, in_tmp_cwd):
    code, _, err = cli(
        "train", "-m", "data.folds=3", "data.fold=range(3)", "optimizer=sgd,adam", *QUICK, "run_name=folds"
    )
    assert code == 0, err
    sweep = in_tmp_cwd / "multirun" / "train" / "folds"
    code, out, err = cli("report", str(sweep), "--no-plots")
    assert code == 0, err
    rows = (sweep / "repeats.csv").read_text().splitlines()
    assert rows[0].startswith("optimizer,repeats") and sorted(r.split(",")[:2] for r in rows[1:]) == [
        ["adam", "3"],
        ["sgd", "3"],
    ]


@pytest.mark.parametrize(
    "overrides, named",
    [(["cv=3", "data.folds=3", "data.fold=1"], "data.folds=3 data.fold=1"), (["cv=1"], "cv=1")],
)
def test_bad_cv_input_is_one_line(overrides, named, cli):
    code, out, err = cli("train", *overrides, "trainer.max_epochs=1")
    assert code == 2 and named in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_optuna_optimises_the_mean_over_the_folds(cli, in_tmp_cwd):
    import optuna

    code, _, err = cli("train", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "cv=2", *QUICK, "run_name=s")
    assert code == 0, err
    sweep = in_tmp_cwd / "multirun" / "train" / "s"
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert len(study.trials) == 2
    for trial in study.trials:
        folds = [read(sweep / str(trial.number) / f"fold_{k}" / "metrics.json")["val/acc_best"] for k in range(2)]
        assert trial.value == pytest.approx(statistics.fmean(folds), rel=1e-12)
        assert folds[0] != folds[1], "the folds validated alike"
