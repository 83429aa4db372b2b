"""Distributed runs on the real engines: a one-node SLURM cluster on this host (tests/support/slurm.py:
munged, slurmctld, slurmd started for the session), srun, sbatch through submitit, and torchrun with
--max-restarts. Each test is small (digits, few batches, two processes) and bounded by a timeout,
so a hang fails instead of stalling; they skip, with the reason, only where the daemons cannot start."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.slurm import Cluster, ClusterUnavailable

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]  # pytest -n: one cluster, one worker

BIGMODEL = shutil.which("bigmodel") or "bigmodel"
DDP = ["accelerator=cpu", "trainer.devices=2"]
SMALL = ["trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "data.batch_size=64"]


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    try:
        cluster = Cluster.start(tmp_path_factory.mktemp("slurm"))
    except ClusterUnavailable as exc:
        pytest.skip(f"no SLURM cluster here: {exc}")
    yield cluster
    cluster.cancel_all()
    cluster.stop()


def scratch_dirs() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("bigmodel-rank")}


def run(argv: list[str], cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=cwd, env={**env, "PYTHONUNBUFFERED": "1"}, capture_output=True, text=True, timeout=timeout
    )


def ok(result: subprocess.CompletedProcess) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"exit {result.returncode}\n{out[-4000:]}"
    return out


def only_run_dir(root: Path) -> Path:
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, f"expected exactly one run directory, found {runs}"
    return runs[0]


def status(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["status"]


def epoch_rows(run_dir: Path) -> list[int]:
    """The epoch of each per-epoch training row of the CSV log (train/acc is logged per epoch)."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f) if row.get("train/acc")]


def checkpoint_step(path: Path) -> int:
    import torch

    return int(torch.load(path, weights_only=True, map_location="cpu")["global_step"])


def test_srun_two_tasks_train_one_ddp_run(slurm, tmp_path):
    """`srun --ntasks=2` (no --ntasks-per-node) with trainer.devices=2: one run directory, both
    tasks ranks of one DDP world (each trains half the batches), nothing left in /tmp."""
    before = scratch_dirs()
    args = [*DDP, *SMALL, "trainer.max_epochs=1", "trainer.limit_train_batches=1.0"]
    out = ok(run(["srun", "--ntasks=2", "--label", BIGMODEL, "train", *args], tmp_path, slurm.env))
    assert "global batch 128 = 64 per device x 2 devices x 1 node" in out
    run_dir = only_run_dir(tmp_path / "outputs" / "train")
    assert status(run_dir) == "completed"
    # digits: 1293 training images; 64 per device on 2 ranks is 11 steps per epoch (21 on one).
    assert checkpoint_step(run_dir / "checkpoints" / "last.ckpt") == 11
    assert scratch_dirs() == before, "a rank left a scratch directory in /tmp"


def test_srun_ddp_sweep_has_one_sweep_directory(slurm, tmp_path):
    """`srun --ntasks=2 bigmodel train -m trainer.devices=2 ...`: the ranks share rank 0's sweep
    directory and run each job together (a process group per job)."""
    args = ["-m", *DDP, "debug=limit", "optimizer=sgd,adam"]
    out = ok(run(["srun", "--ntasks=2", BIGMODEL, "train", *args], tmp_path, slurm.env))
    sweep = only_run_dir(tmp_path / "multirun" / "train")
    assert [status(sweep / job) for job in ("0", "1")] == ["completed", "completed"], out[-3000:]


def test_srun_resumes_a_two_task_run_on_both_ranks(slurm, tmp_path):
    """resume=<run> and resume=auto run_name=... on 2 tasks: both ranks resume from the same
    checkpoint, no hang, and the CSV log has each epoch once."""
    srun = ["srun", "--ntasks=2", "--label", BIGMODEL, "train"]
    first = [*DDP, *SMALL, "trainer.limit_train_batches=3", "run_name=nightly"]
    ok(run([*srun, *first, "trainer.max_epochs=1"], tmp_path, slurm.env))
    run_dir = tmp_path / "outputs" / "train" / "nightly"
    out = ok(run([*srun, f"resume={run_dir}", "trainer.max_epochs=2"], tmp_path, slurm.env))
    resumed = [line for line in out.splitlines() if "resuming" in line]
    assert any(line.startswith("0:") for line in resumed), out[-3000:]
    # Any rank that says where it resumes says the same (callbacks/guards.SameStart stops them otherwise).
    assert len({line[2:].strip() for line in resumed}) == 1, f"the ranks resumed differently: {resumed}"
    # A requeued job script runs the same command again: resume=auto finds the run by its name.
    out = ok(run([*srun, *first, "resume=auto", "trainer.max_epochs=3"], tmp_path, slurm.env))
    assert "starting fresh" not in out and "last.ckpt (epoch 1, step 6)" in out, out[-3000:]
    assert only_run_dir(tmp_path / "outputs" / "train") == run_dir and status(run_dir) == "completed"
    assert epoch_rows(run_dir) == [0, 1, 2]
    assert checkpoint_step(run_dir / "checkpoints" / "last.ckpt") == 9


def late_second_task(args: list[str], seconds: int = 12) -> list[str]:
    """srun --ntasks=2 where task 1 starts `seconds` after task 0 (a slow or loaded node): task 0
    has finished failing by then."""
    command = " ".join([BIGMODEL, *args])
    return ["srun", "--ntasks=2", "sh", "-c", f'[ "$SLURM_PROCID" = 0 ] || sleep {seconds}; exec {command}']


def test_srun_tasks_without_as_many_devices_is_one_line(slurm, tmp_path):
    """Each task prints the one line, the late one too: rank 0 keeps its rendezvous open until
    task 1 has read it, instead of task 1 retrying a closed port for the whole timeout."""
    result = run(late_second_task(["train", "accelerator=cpu", "debug=fdr"]), tmp_path, slurm.env, timeout=120)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert len(errors) == 2 and all("srun started 2 tasks" in e and "trainer.devices=2" in e for e in errors), errors
    assert "Traceback" not in result.stderr and "[c10d]" not in result.stderr, result.stderr[-3000:]
    # Rank 0 stops before it announces a run directory: the late task learns that, and stops at once.
    bad = run(late_second_task(["train", "model=mlpp", "trainer.devices=2"]), tmp_path, slurm.env, timeout=120)
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert bad.returncode == 2 and len(errors) == 2, bad.stderr[-3000:]
    assert "model=mlpp" in errors[0] and "rank 1: rank 0 stopped before its run began" in errors[1], errors


def test_submitit_slurm_sweep_on_cpu_with_its_defaults(slurm, tmp_path):
    out = ok(
        run(
            [
                BIGMODEL,
                "train",
                "-m",
                "launcher=submitit_slurm",
                "accelerator=cpu",
                "debug=limit",
                "optimizer=sgd,adam",
            ],
            tmp_path,
            slurm.env,
        )
    )
    sweep = only_run_dir(tmp_path / "multirun" / "train")
    assert [status(sweep / job) for job in ("0", "1")] == ["completed", "completed"], out[-3000:]
    # What a node cannot hold is one line before anything is submitted (it would pend forever).
    big = run(
        [BIGMODEL, "train", "-m", "launcher=submitit_slurm", "accelerator=cpu", "hydra.launcher.cpus_per_task=64"],
        tmp_path,
        slurm.env,
        timeout=60,
    )
    assert big.returncode == 2 and "no node of partition debug fits one job" in big.stderr, big.stderr[-2000:]
    # sbatch's own refusal is one line with its reason.
    refused = run(
        [BIGMODEL, "train", "-m", "launcher=submitit_slurm", "accelerator=cpu", "hydra.launcher.partition=nope"],
        tmp_path,
        slurm.env,
        timeout=60,
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert "error: sbatch refused the sweep's jobs: invalid partition specified: nope" in refused.stderr
    # Nothing of the refused sweep is queued; the first sweep's jobs leave the queue once SLURM has
    # seen their processes end, which on a loaded machine takes some seconds after they finished.
    deadline = time.monotonic() + 90
    while slurm.jobs().strip() and time.monotonic() < deadline:
        time.sleep(1)
    assert slurm.jobs().strip() == "", "a job was left in the queue"


def test_optuna_workers_as_slurm_tasks(slurm, tmp_path):
    """`srun --ntasks=2 bigmodel train -m hparams_search=optuna`: two independent workers sharing
    one study; every trial's run directory is complete."""
    args = ["-m", "hparams_search=optuna", "run_name=s1", "hydra.sweeper.n_trials=4", "debug=limit"]
    out = ok(run(["srun", "--ntasks=2", "--label", BIGMODEL, "train", *args], tmp_path, slurm.env, timeout=400))
    sweep = tmp_path / "multirun" / "train" / "s1"
    trials = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in trials] == ["0", "1", "2", "3"], out[-3000:]
    for trial in trials:
        assert status(trial) in ("completed", "pruned"), (trial, out[-3000:])
        assert (trial / "metrics.json").is_file() and (trial / "checkpoints").is_dir()
    workers = {line[:2] for line in out.splitlines() if "bigmodel train: " in line}  # a trial's final table
    assert workers == {"0:", "1:"}, f"both tasks should run trials:\n{out[-3000:]}"


def rank_process(marker: str, rank: str, variable: str) -> int | None:
    """The pid of the bigmodel process of this test (its marker variable) with `variable`=rank."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"BIGMODEL_TEST_MARK={marker}".encode() in environ and f"{variable}={rank}".encode() in environ:
            return int(pid)
    return None


def kill_rank_after_first_checkpoint(tmp_path: Path, variable: str, process, timeout: float = 240) -> float:
    """SIGKILL rank 1 once epoch 0's last.ckpt is written (in epoch 1); returns when."""
    deadline = time.monotonic() + timeout
    while not list(tmp_path.glob("outputs/train/*/checkpoints/last.ckpt")):
        console = (tmp_path / "console.txt").read_text(errors="replace")[-3000:]
        assert process.poll() is None, f"it ended (exit {process.returncode}) before a checkpoint:\n{console}"
        assert time.monotonic() < deadline, f"no checkpoint was written:\n{console}"
        time.sleep(0.2)
    time.sleep(0.5)
    pid = rank_process(str(tmp_path), "1", variable)
    assert pid is not None, "rank 1 is gone already"
    os.kill(pid, signal.SIGKILL)
    return time.monotonic()


def start(argv: list[str], tmp_path: Path, env: dict) -> subprocess.Popen:
    """Start argv in the background, its output to tmp_path/console.txt (a pipe nobody reads
    while we wait would fill up and stop the ranks)."""
    with open(tmp_path / "console.txt", "w") as console:
        return subprocess.Popen(
            argv,
            cwd=tmp_path,
            env={**env, "PYTHONUNBUFFERED": "1", "BIGMODEL_TEST_MARK": str(tmp_path)},
            stdout=console,
            stderr=subprocess.STDOUT,
        )


def finish(process: subprocess.Popen, tmp_path: Path, timeout: float) -> str:
    process.wait(timeout)
    return (tmp_path / "console.txt").read_text(errors="replace")


def test_torchrun_restarts_a_killed_worker_and_the_run_goes_on(tmp_path):
    """torchrun --max-restarts=1, rank 1 SIGKILLed in epoch 1: both workers restart, continue the
    same run from its newest checkpoint, and the CSV log has every epoch exactly once."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--max-restarts=1"]
    args = [*DDP, "trainer.max_epochs=4", "data.batch_size=16", "trainer.limit_val_batches=4"]
    process = start([*torchrun, "-m", "bigmodel_cli", "train", *args], tmp_path, dict(os.environ))
    try:
        kill_rank_after_first_checkpoint(tmp_path, "RANK", process)
        out = finish(process, tmp_path, 400)
    finally:
        process.kill()
    assert process.returncode == 0, out[-4000:]
    assert "torchrun restart 1: continuing" in out and "from its newest checkpoint" in out, out[-3000:]
    run_dir = only_run_dir(tmp_path / "outputs" / "train")
    assert status(run_dir) == "completed"
    assert epoch_rows(run_dir) == [0, 1, 2, 3], f"epochs in the CSV log: {epoch_rows(run_dir)}"
    assert json.loads((run_dir / "run.json").read_text()).get("resumed_at"), "the restart did not resume the run"
    # The same run left alone ends with the same metrics, exactly (the resumed state is whole).
    alone = tmp_path / "alone"
    alone.mkdir()
    ok(run([*torchrun[:-1], "-m", "bigmodel_cli", "train", *args], alone, dict(os.environ), timeout=400))
    expected = json.loads((only_run_dir(alone / "outputs" / "train") / "metrics.json").read_text())
    assert json.loads((run_dir / "metrics.json").read_text()) == expected


def test_a_killed_rank_stops_the_other_in_bounded_time(slurm, tmp_path):
    """srun, no restart: rank 1 SIGKILLed; rank 0 stops within the bound with one line, and the
    run is marked failed."""
    args = [*DDP, "trainer.max_epochs=20", "data.batch_size=16", "trainer.strategy.timeout_s=60"]
    process = start(["srun", "--ntasks=2", BIGMODEL, "train", *args], tmp_path, slurm.env)
    try:
        killed = kill_rank_after_first_checkpoint(tmp_path, "SLURM_PROCID", process)
        out = finish(process, tmp_path, 180)
        took = time.monotonic() - killed
    finally:
        process.kill()
    assert took < 90, f"rank 0 took {took:.0f}s to stop after rank 1 died"
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "rank 0 lost the other ranks of this run" in errors[0], out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    run_dir = only_run_dir(tmp_path / "outputs" / "train")
    assert status(run_dir) == "failed"


def test_a_frozen_rank_stops_the_other_at_the_process_group_timeout(slurm, tmp_path):
    """Rank 1 stopped (SIGSTOP: alive, silent, no connection reset): rank 0 gives up at
    trainer.strategy.timeout_s with one line; srun --kill-on-bad-exit then ends the step."""
    args = [*DDP, "trainer.max_epochs=20", "data.batch_size=16", "trainer.strategy.timeout_s=20"]
    process = start(["srun", "--ntasks=2", "--kill-on-bad-exit=1", BIGMODEL, "train", *args], tmp_path, slurm.env)
    frozen = None
    try:
        deadline = time.monotonic() + 240
        while not list(tmp_path.glob("outputs/train/*/checkpoints/last.ckpt")):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "console.txt").read_text()[
                -3000:
            ]
            time.sleep(0.2)
        frozen = rank_process(str(tmp_path), "1", "SLURM_PROCID")
        os.kill(frozen, signal.SIGSTOP)
        stopped = time.monotonic()
        out = finish(process, tmp_path, 180)
        took = time.monotonic() - stopped
    finally:
        process.kill()
        if frozen is not None and Path(f"/proc/{frozen}").exists():
            os.kill(frozen, signal.SIGKILL)
    assert took < 90, f"the job took {took:.0f}s to end after rank 1 froze (timeout_s=20)"
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    # gloo reports its timeout in one of two words, depending on which side of the pair notices first.
    timed_out = ("(Timed out waiting 20000ms", "(Application timeout caused pair closure")
    assert any(
        e.startswith("error: rank 0 lost the other ranks of this run " + t) for e in errors for t in timed_out
    ), out[-3000:]
    # srun's SIGTERM wakes rank 1 (SIGCONT first), which then finds rank 0 gone: its own one line.
    assert all("lost the other ranks of this run" in e for e in errors) and "Traceback" not in out, out[-3000:]
    assert status(only_run_dir(tmp_path / "outputs" / "train")) == "failed"


def job_state(slurm, job: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, env=slurm.env).stdout
    return next((w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")), "")


def test_a_requeued_two_task_job_resumes_on_both_ranks(slurm, tmp_path):
    """sbatch --requeue with `srun bigmodel train ... run_name=rq resume=auto`, then `scontrol
    requeue` mid-run (SIGTERM: both ranks save and stop): the job runs again and both ranks resume
    from the checkpoint; every CSV epoch once."""
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n#SBATCH --ntasks=2\n#SBATCH --requeue\n#SBATCH --output=job.out\n#SBATCH --open-mode=append\n"
        f"srun --label {BIGMODEL} train {' '.join(DDP)} data.batch_size=16 trainer.max_epochs=5 "
        "trainer.limit_val_batches=4 run_name=rq resume=auto\n"
    )
    env = {**slurm.env, "PYTHONUNBUFFERED": "1"}
    job = subprocess.run(["sbatch", "--parsable", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    job_id = job.stdout.strip().split(";")[0]
    run_dir = tmp_path / "outputs" / "train" / "rq"
    console = tmp_path / "job.out"
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "checkpoints" / "last.ckpt").is_file():
            assert time.monotonic() < deadline and job_state(slurm, job_id) in ("PENDING", "RUNNING"), (
                console.read_text()[-3000:] if console.is_file() else job.stderr
            )
            time.sleep(0.3)
        subprocess.run(["scontrol", "requeue", job_id], env=env, check=True)
        deadline = time.monotonic() + 300
        while job_state(slurm, job_id) != "COMPLETED":
            assert time.monotonic() < deadline, f"{job_state(slurm, job_id)}\n{console.read_text()[-3000:]}"
            # SLURM holds a requeued job back two minutes (BeginTime): let it start now.
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], env=env, capture_output=True)
            time.sleep(1)
    finally:
        subprocess.run(["scancel", job_id], env=env, capture_output=True)
    out = console.read_text()
    assert json.loads((run_dir / "run.json").read_text()).get("resumed_at"), out[-3000:]  # stopped, then resumed
    resumed = [line for line in out.splitlines() if "resuming" in line]
    assert any(line.startswith("0:") for line in resumed) and len({line[2:] for line in resumed}) == 1, out[-3000:]
    assert status(run_dir) == "completed" and epoch_rows(run_dir) == [0, 1, 2, 3, 4]
