"""The command line read in one pass (bigmodel_cli/cli/argv.py)."""

from __future__ import annotations

import json
import os
import tempfile

from bigmodel_cli import process_state
from bigmodel_cli.cli.argv import Invocation, parse
from bigmodel_cli.commands import SUBCOMMANDS
from bigmodel_cli.process_state import DDP_JOB_ENV
from bigmodel_cli.runs import ddp_job


def test_own_flags_come_out_wherever_they_are():
    got = parse(["--verbose", "train", "model=mlp", "--trust-checkpoint", "--fail-fast"], SUBCOMMANDS)
    assert got == Invocation("train", ["model=mlp", "++fail_fast=true"], verbose=True, trust_checkpoint=True)
    assert parse([], SUBCOMMANDS).command == "help"
    assert parse(["--verbose", "--help"], SUBCOMMANDS).command == "help"
    assert parse(["--version"], SUBCOMMANDS).command == "version"
    assert parse(["reproduce", "outputs/x", "--verify"], SUBCOMMANDS).arguments == ["outputs/x", "--verify"]


def test_a_ddp_child_runs_its_parents_job(monkeypatch):
    job = {
        "command": "train",
        "config_source": ["--config-path", "/runs/a/.hydra"],
        "overrides": ["model=mlp"],
        "run_dir": "/runs/a",
    }
    monkeypatch.setenv(DDP_JOB_ENV, json.dumps(job))
    monkeypatch.setenv("LOCAL_RANK", "1")
    # Lightning re-runs the script with the overrides Hydra saw, without the subcommand.
    got = parse(["model=mlp"], SUBCOMMANDS)
    assert got.command == "train"
    assert got.arguments[:3] == ["--config-path", "/runs/a/.hydra", "model=mlp"]
    assert 'hydra.run.dir="/runs/a"' in got.arguments and "hydra.output_subdir=null" in got.arguments


def torchrun_store(monkeypatch, rank: int, restart: int = 0):
    """A store standing in for torchrun's agent store, and the variables torchrun gives worker `rank`."""
    from datetime import timedelta

    import torch.distributed as dist

    from tests.support.slurm import free_port

    port = free_port()
    store = dist.TCPStore("127.0.0.1", port, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=5))
    env = {"TORCHELASTIC_RUN_ID": "t", "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "TORCHELASTIC_RESTART_COUNT": str(restart)}
    monkeypatch.delenv(DDP_JOB_ENV, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # What the rendezvous keeps for the rest of the process, undone after the test.
    monkeypatch.setattr(process_state, "LAUNCH_STORE", {})
    monkeypatch.setattr(ddp_job.Rendezvous, "opened", None)
    return store


def test_a_non_zero_rank_of_torchrun_runs_in_rank_zeros_run_dir(monkeypatch, tmp_path):
    store = torchrun_store(monkeypatch, rank=1)
    store.set(ddp_job.RUN_DIR_KEY, str(tmp_path / "run"))  # what rank 0 announces at its job's start
    got = parse(["train", "model=mlp"], SUBCOMMANDS)
    assert got.command == "train" and got.arguments[0] == "model=mlp"
    assert f'hydra.run.dir="{tmp_path / "run"}"' in got.arguments and "hydra.output_subdir=null" in got.arguments
    assert not [p for p in os.listdir(tempfile.gettempdir()) if p.startswith("bigmodel-rank")]


def test_a_restarted_torchrun_worker_continues_its_run(monkeypatch, tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 1\n")
    store = torchrun_store(monkeypatch, rank=0, restart=1)
    store.set(ddp_job.RUN_DIR_KEY, str(run))
    assert parse(["train", "x=1"], SUBCOMMANDS).arguments == ["x=1", f'hydra.run.dir="{run}"']  # no checkpoint yet
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    # The saved config, which rank zero leaves as it is while the other ranks compose from it.
    assert parse(["train", "x=1", "--verbose"], SUBCOMMANDS).arguments == [f"resume={run}", "hydra.output_subdir=null"]


def test_a_slurm_task_of_a_one_device_multirun_is_a_worker(monkeypatch):
    monkeypatch.delenv(DDP_JOB_ENV, raising=False)
    for name, value in {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_JOB_NAME": "bigmodel"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(process_state.WORKER_ENV, "")  # recorded, so the worker mode set below is undone
    monkeypatch.delenv(process_state.WORKER_ENV)
    args = ["train", "-m", "hparams_search=optuna"]
    assert parse(args, SUBCOMMANDS).arguments == args[1:]
    assert os.environ[process_state.WORKER_ENV] == "1/2" and "SLURM_NTASKS" not in os.environ
    assert process_state.global_rank() == 0  # it writes its own trials' run files
