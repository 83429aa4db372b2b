"""End to end: a training process killed with SIGKILL mid-run is resumed with resume=<run dir>; it
ends at the configured epoch count, its CSV log has every epoch once, and its final metrics match an
uninterrupted run of the same config within tolerance."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

ARGS = [
    "data=synthetic",
    "data.source.train_samples=1024",
    "data.source.test_samples=256",
    "model=mlp",
    "accelerator=cpu",
    "trainer.max_epochs=6",
    "trainer.limit_test_batches=2",
    "deterministic=true",
]


def val_epochs(run_dir) -> list[int]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f) if row.get("val/acc")]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(cli, in_tmp_cwd):
    run_dir = in_tmp_cwd / "outputs" / "train" / "killed"
    last = run_dir / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(
        [sys.executable, "-m", "bigmodel_cli", "train", *ARGS, "run_name=killed"],
        cwd=in_tmp_cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while not last.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "training ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists(), "the killed run must not have finished"

    code, out, err = cli("train", f"resume={run_dir}")
    assert code == 0, err
    assert "resuming" in out
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert val_epochs(run_dir) == list(range(6)), "the CSV log has duplicate or missing epochs"

    code, _, err = cli("train", *ARGS, "run_name=straight")
    assert code == 0, err
    straight = json.loads((in_tmp_cwd / "outputs" / "train" / "straight" / "metrics.json").read_text())
    for key in ("val/acc", "test/acc"):
        assert resumed[key] == pytest.approx(straight[key], abs=0.05), key
