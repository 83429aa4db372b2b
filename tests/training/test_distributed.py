"""Distributed training through the installed `bigmodel` command, as users type it: DDP over CPU
processes (gloo), DDP inside a Hydra multirun, a simulated two-node torchrun on loopback, and the
joblib / submitit launchers. Every run keeps the default callbacks (rich progress bar, model
summary, checkpoints, CSV logger): only rank zero draws the bar. Each test is bounded by a
timeout, so a hang fails instead of stalling."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from bigmodel_cli.commands import train
from tests.support.console import assert_quiet_console

pytestmark = pytest.mark.slow

BIGMODEL = shutil.which("bigmodel") or "bigmodel"
# Small and quick, on the default digits data, with every default callback on.
QUICK = ["trainer.max_epochs=2"]


def run_cli(
    args: list[str], cwd: Path, timeout: int = 420, command: list[str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        command or [BIGMODEL, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def only_run_dir(root: Path) -> Path:
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, f"expected exactly one run directory, found {runs}"
    return runs[0]


def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path, compose_cfg):
    result = run_cli(["train", "accelerator=cpu", "trainer.devices=2", "data.batch_size=32", *QUICK], tmp_path)
    assert "global batch 64 = 32 per device x 2 devices x 1 node" in result.stdout
    assert_quiet_console(result.stdout + result.stderr, devices=2)  # each line once, no banners
    assert not (tmp_path / "multirun").exists()
    run = only_run_dir(tmp_path / "outputs" / "train")
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    assert [f for f in files if "ddp_process" in f or "rank" in f] == [], f"a non-zero rank wrote files: {files}"
    assert {"run.json", "metrics.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt"} <= set(files)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed"
    ddp = json.loads((run / "metrics.json").read_text())

    # The same global batch on one process, in-process: the final metrics agree.
    with compose_cfg("train", ["accelerator=cpu", "data.batch_size=64", *QUICK]) as cfg:
        single = train.run(cfg)
    for key in ("val/acc", "test/acc"):
        assert abs(ddp[key] - single[key]) < 0.05, (key, ddp[key], single[key])

    # Re-running that DDP run from its saved config, both ways, re-launches its ranks with the same
    # config source (the children once composed the default config plus the saved one: "hydra
    # appears more than once in the final defaults list").
    reproduced = run_cli(["reproduce", str(run), "trainer.max_epochs=1"], tmp_path)
    assert "global batch 64 = 32 per device x 2 devices" in reproduced.stdout
    again = run_cli(
        ["train", "--config-path", str(run / ".hydra"), "--config-name", "config", "trainer.max_epochs=1"], tmp_path
    )
    assert "global batch 64 = 32 per device x 2 devices" in again.stdout
    runs = [p for p in (tmp_path / "outputs" / "train").iterdir() if p != run]
    assert len(runs) == 2 and all(json.loads((p / "run.json").read_text())["status"] == "completed" for p in runs)


def test_lr_auto_under_ddp_spawn_trains_every_process_with_the_found_lr(tmp_path):
    # The range test runs in the launching process (spawned processes could not hand its result
    # back); both ranks then train with the lr it found, which the checkpoint records.
    import torch

    args = ["accelerator=ddp_spawn", "trainer.accelerator=cpu", "trainer.devices=2", "optimizer.lr=auto"]
    run_cli(["train", *args, "lr_find.num_training=20", *QUICK], tmp_path)
    run = only_run_dir(tmp_path / "outputs" / "train")
    found = json.loads((run / "run.json").read_text())["lr_found"]
    assert isinstance(found, float) and found > 1e-6  # not the finder's starting lr
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["hyper_parameters"]["config"]["optimizer"]["lr"] == found
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["initial_lr"] == found


def test_ddp_inside_a_multirun_sweep(tmp_path):
    run_cli(["train", "-m", "accelerator=cpu", "trainer.devices=2", "optimizer=sgd,adam", "debug=limit"], tmp_path)
    assert not (tmp_path / "outputs").exists(), "DDP children must not start their own run directories"
    sweep = only_run_dir(tmp_path / "multirun" / "train")
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == ["0", "1"]
    optimizers = set()
    for job in jobs:
        record = json.loads((sweep / job / "run.json").read_text())
        assert record["status"] == "completed"
        optimizers.add(record["config"]["optimizer"]["_target_"])
        assert (sweep / job / "metrics.json").is_file()
    assert optimizers == {"torch.optim.SGD", "torch.optim.Adam"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_together(commands: list[tuple[list[str], dict]], cwd: Path) -> list[str]:
    """Start every (argv, extra env) at once, as a launcher would; all must exit 0. Their outputs."""
    processes = [
        subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for argv, env in commands
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=420)[0])
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    return outputs


def test_two_node_torchrun_on_loopback(tmp_path):
    """Two torchrun agents, node_rank 0 and 1, one CPU process each: Lightning's TorchElastic
    environment sees a world of two nodes."""
    port = str(free_port())
    common = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=1",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
    ]
    args = ["-m", "bigmodel_cli", "train", "accelerator=cpu", "trainer.num_nodes=2", "trainer.devices=1", "debug=limit"]
    outputs = run_together([([*common, f"--node_rank={rank}", *args], {}) for rank in (0, 1)], tmp_path)
    assert "global batch 128 = 64 per device x 1 device x 2 nodes" in outputs[0]
    run = only_run_dir(tmp_path / "outputs" / "train")
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_joblib_launcher_runs_jobs_in_parallel(tmp_path):
    run_cli(
        [
            "train",
            "-m",
            "launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "optimizer=sgd,adam,adamw,rmsprop",
            "debug=limit",
        ],
        tmp_path,
    )
    sweep = only_run_dir(tmp_path / "multirun" / "train")
    spans = []
    for job in sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")):
        record = json.loads((job / "run.json").read_text())
        assert record["status"] == "completed"
        spans.append((datetime.fromisoformat(record["start_time"]), datetime.fromisoformat(record["end_time"])))
    assert len(spans) == 4
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1 :] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, f"no two jobs ran at the same time: {spans}"


def test_submitit_local_launcher(tmp_path):
    run_cli(["train", "-m", "launcher=submitit_local", "debug=limit"], tmp_path)
    sweep = only_run_dir(tmp_path / "multirun" / "train")
    record = json.loads((sweep / "0" / "run.json").read_text())
    assert record["status"] == "completed" and (sweep / "0" / "metrics.json").is_file()


def test_submitit_slurm_config_composes(cli):
    """What each job asks SLURM for follows its trainer (a sweep on a real cluster:
    tests/training/test_clusters.py): tasks per node = trainer.devices, nodes = trainer.num_nodes,
    GPUs only with accelerator=gpu, and the accelerator group is not overridden."""
    code, out, err = cli("train", "launcher=submitit_slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra")
    assert code == 0, err
    assert "bigmodel_launchers.slurm.SlurmLauncher" in out and "partition: gpu" in out and "signal_delay_s: 120" in out
    assert "cpus_per_task: 1" in out and "mem_gb: 4" in out
    code, out, err = cli(
        "train", "launcher=submitit_slurm", "accelerator=cpu", "trainer.devices=2", "--cfg", "all", "--resolve"
    )
    assert code == 0, err
    assert "tasks_per_node: 2" in out and "accelerator: cpu" in out and "accelerator: gpu" not in out


def test_submitit_slurm_asks_for_gpus_only_on_gpu():
    from omegaconf import OmegaConf

    from hydra_plugins.bigmodel_launchers.slurm import gpus_for

    assert gpus_for(OmegaConf.create({"accelerator": "cpu", "devices": 2})) is None
    assert gpus_for(OmegaConf.create({"accelerator": "auto", "devices": 1})) is None
    assert gpus_for(OmegaConf.create({"accelerator": "gpu", "devices": 4})) == 4


def test_srun_style_launch_two_tasks(tmp_path):
    """Two processes started as `srun --ntasks=2 bigmodel train ...` starts them (SLURM variables
    set by hand: no cluster here): Lightning's SLURM environment wires them into one DDP world."""
    port = str(free_port())
    args = [BIGMODEL, "train", "accelerator=cpu", "trainer.devices=2", "debug=limit"]
    slurm = {
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NODEID": "0",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "bigmodel",
        "SLURM_NODELIST": "127.0.0.1",
        "MASTER_PORT": port,
    }
    outputs = run_together(
        [(args, {**slurm, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)}) for rank in (0, 1)], tmp_path
    )
    assert "global batch 128 = 64 per device x 2 devices x 1 node" in outputs[0]
    run = only_run_dir(tmp_path / "outputs" / "train")
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
