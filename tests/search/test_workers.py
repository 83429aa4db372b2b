"""Searches as several processes run them, through the installed `bigmodel`: two workers sharing one
study in the default SQLite file and in a real PostgreSQL server started here on 127.0.0.1, a worker
killed mid-trial (its trial goes stale, is failed and re-run with the same parameters), and DDP trials."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.faults import REPO, fault_overrides

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres")]  # pytest -n: one server, one worker

BIGMODEL = shutil.which("bigmodel") or "bigmodel"
QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2"]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [BIGMODEL, "train", "-m", "hparams_search=optuna", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)},  # the fault callback's module
        start_new_session=True,  # a group of its own, so a test can kill a worker with its children
    )


def finish(worker: subprocess.Popen, timeout: int = 420) -> str:
    out, _ = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, out[-4000:]
    return out


def trials_told(output: str) -> set[int]:
    return {int(n) for n in re.findall(r"trial (\d+): complete", output)}


def load(storage: str, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


def assert_shared(outputs: list[str], study, sweep: Path, n_trials: int) -> None:
    """Every trial ran once, in the job directory of its number, and the workers split the work."""
    import optuna

    told = [trials_told(out) for out in outputs]
    assert all(told), f"a worker ran no trial: {told}"
    assert not told[0] & told[1] and told[0] | told[1] == set(range(n_trials))
    # Two workers asking in the same instant past n_trials: the later trial is told FAIL at once,
    # marked surplus, never run and not counted.
    surplus = [t for t in study.trials if t.system_attrs.get("bigmodel_surplus")]
    assert all(t.state == optuna.trial.TrialState.FAIL and t.number >= n_trials for t in surplus)
    counted = [t for t in study.trials if t not in surplus]
    assert [t.state for t in counted] == [optuna.trial.TrialState.COMPLETE] * n_trials
    assert sorted(int(p.name) for p in sweep.iterdir() if p.is_dir()) == list(range(n_trials))
    for trial in counted:
        record = json.loads((sweep / str(trial.number) / "run.json").read_text())
        assert record["status"] == "completed" and f"hparams_search.trial={trial.number}" in record["overrides"]
        assert record["config"]["optimizer"]["lr"] == pytest.approx(trial.params["optimizer.lr"])


def test_two_workers_share_the_study_in_the_sweep_directory(tmp_path):
    args = ["run_name=shared", "hydra.sweeper.n_trials=6", *QUICK]
    outputs = [finish(w) for w in [start(args, tmp_path), start(args, tmp_path)]]
    sweep = tmp_path / "multirun" / "train" / "shared"
    assert_shared(outputs, load(f"sqlite:///{sweep / 'optuna.db'}", sweep.name), sweep, 6)


def test_two_workers_share_a_study_in_postgresql(tmp_path, postgres):
    args = ["run_name=pg", "hydra.sweeper.n_trials=5", f"hparams_search.storage={postgres}", *QUICK]
    outputs = [finish(w) for w in [start(args, tmp_path), start(args, tmp_path)]]
    sweep = tmp_path / "multirun" / "train" / "pg"
    assert not (sweep / "optuna.db").exists()
    assert_shared(outputs, load(postgres, "pg"), sweep, 5)
    assert "postgresql://postgres@127.0.0.1" in (sweep / "0" / "run.json").read_text()


def test_a_killed_workers_trial_goes_stale_and_is_run_again(tmp_path):
    """Worker A is killed (SIGKILL, no goodbye) while trial 0 trains. Its heartbeat stops; worker B
    runs the other trials, then finds trial 0 stale after the grace period, fails it and runs it again
    as a new trial with the same parameters. The study ends at n_trials counted trials."""
    import optuna

    beat = ["hparams_search.heartbeat_interval=1", "hparams_search.grace_period=4", "run_name=killed"]
    sweep = tmp_path / "multirun" / "train" / "killed"
    a = start([*beat, "hydra.sweeper.n_trials=3", "trainer.max_epochs=100"], tmp_path)
    deadline = time.monotonic() + 120
    while not (sweep / "0" / "csv" / "metrics.csv").is_file():  # trial 0 is training
        assert a.poll() is None and time.monotonic() < deadline, a.stdout.read() if a.poll() is not None else "timeout"
        time.sleep(0.5)
    os.killpg(a.pid, signal.SIGKILL)
    a.wait()
    storage = f"sqlite:///{sweep / 'optuna.db'}"
    assert load(storage, "killed").trials[0].state == optuna.trial.TrialState.RUNNING

    finish(start([*beat, "hydra.sweeper.n_trials=3", *QUICK], tmp_path))
    trials = load(storage, "killed").trials
    State = optuna.trial.TrialState
    assert len(trials) == 4 and trials[0].state == State.FAIL
    assert [t.state for t in trials[1:]] == [State.COMPLETE] * 3
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert retry.params == trials[0].params
    assert json.loads((sweep / str(retry.number) / "run.json").read_text())["status"] == "completed"


def test_ddp_trials_report_from_rank_zero_with_the_parameters_of_their_trial(tmp_path):
    """Two DDP ranks per trial: the study holds exactly the trials asked (the second rank of each
    job samples nothing), one report per epoch, and both ranks ran the trial's parameters."""
    import optuna

    args = ["run_name=ddp", *QUICK, "trainer.max_epochs=2", "accelerator=cpu", "trainer.devices=2"]
    out = finish(start([*args, "hydra.sweeper.n_trials=2", "hparams_search.pruner=median"], tmp_path))
    sweep = tmp_path / "multirun" / "train" / "ddp"
    trials = load(f"sqlite:///{sweep / 'optuna.db'}", sweep.name).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2, out[-3000:]
    for trial in trials:
        assert sorted(trial.intermediate_values) == [0, 1]
        record = json.loads((sweep / str(trial.number) / "run.json").read_text())
        assert record["config"]["optimizer"]["lr"] == pytest.approx(trial.params["optimizer.lr"])
        assert record["config"]["trainer"]["devices"] == 2


def wait_training(worker: subprocess.Popen, job: Path) -> None:
    deadline = time.monotonic() + 120
    while not (job / "csv" / "metrics.csv").is_file():  # the trial has trained an epoch
        assert worker.poll() is None and time.monotonic() < deadline, (
            worker.stdout.read() if worker.poll() is not None else "timeout"
        )
        time.sleep(0.5)


def epochs_logged(run: Path) -> set[int]:
    import csv

    with open(run / "csv" / "metrics.csv", newline="") as f:
        return {int(row["epoch"]) for row in csv.DictReader(f) if row.get("val/acc")}


def test_a_preempted_trial_is_run_again_and_its_worker_stops(tmp_path):
    """SIGUSR1 (SLURM's pre-emption warning) while trial 0 trains epoch 1 (sent at step 4 by the
    fault callback, so it lands in the same epoch on any machine): training saves last.ckpt and
    stops; the trial is failed, marked pre-empted (not counted) and queued again with its parameters,
    and the worker stops with one line. The next worker runs it and the others: every parameter set
    of the study completes exactly once, the pre-empted one going on from the checkpoint it saved."""
    import optuna

    State = optuna.trial.TrialState
    sweep = tmp_path / "multirun" / "train" / "pre"
    args = ["run_name=pre", "hydra.sweeper.n_trials=3"]
    a = start([*args, *QUICK[1:], "trainer.max_epochs=2", *fault_overrides(4, "SIGUSR1")], tmp_path)
    out, _ = a.communicate(timeout=180)
    assert a.returncode == 2 and "Traceback" not in out, out[-3000:]
    assert "error: trial 0 was pre-empted (received SIGUSR1" in out and "this worker stops" in out
    assert not (sweep / "1").exists()  # it stopped: no other trial started
    record = json.loads((sweep / "0" / "run.json").read_text())
    assert record["status"] == "interrupted" and (sweep / "0" / "checkpoints" / "last.ckpt").is_file()
    first = load(f"sqlite:///{sweep / 'optuna.db'}", "pre").trials
    assert [t.state for t in first] == [State.FAIL, State.WAITING]
    assert first[0].system_attrs["bigmodel_preempted"] and first[1].user_attrs["bigmodel_rerun_of"] == 0

    finish(start([*args, *QUICK[1:], "trainer.max_epochs=2"], tmp_path))
    trials = load(f"sqlite:///{sweep / 'optuna.db'}", "pre").trials
    complete = [t for t in trials if t.state == State.COMPLETE]
    assert len(complete) == 3 and len(trials) == 4
    sets = [sorted(t.params.items()) for t in trials]
    assert all(sum(t.state == State.COMPLETE for t in trials if sorted(t.params.items()) == s) == 1 for s in sets)
    assert trials[1].params == trials[0].params and trials[1].state == State.COMPLETE
    # the re-run went on from the checkpoint the pre-empted run saved (in epoch 1): it trained epoch 1 only
    rerun = json.loads((sweep / "1" / "run.json").read_text())
    assert f"ckpt_path={sweep / '0' / 'checkpoints' / 'last.ckpt'}" in [o.replace("'", "") for o in rerun["overrides"]]
    assert epochs_logged(sweep / "1") == {1} and epochs_logged(sweep / "2") == {0, 1}


def test_ctrl_c_records_the_trial_interrupted_and_queues_it_again(tmp_path):
    import optuna

    sweep = tmp_path / "multirun" / "train" / "ctrlc"
    a = start(["run_name=ctrlc", "hydra.sweeper.n_trials=2", "trainer.max_epochs=100", "trainer.limit_train_batches=3",
               "trainer.limit_val_batches=1"], tmp_path)  # fmt: skip
    wait_training(a, sweep / "0")
    os.kill(a.pid, signal.SIGINT)
    out, _ = a.communicate(timeout=180)
    assert a.returncode != 0, out[-3000:]
    record = json.loads((sweep / "0" / "run.json").read_text())
    assert record["status"] == "interrupted" and "end_time" in record
    listed = subprocess.run([BIGMODEL, "runs", "--status", "interrupted", "--json", "multirun"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 1, listed.stderr
    trials = load(f"sqlite:///{sweep / 'optuna.db'}", "ctrlc").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    assert trials[1].params == trials[0].params
