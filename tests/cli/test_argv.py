"""The command line read in one pass (bigmodel_cli/cli/argv.py)."""

from __future__ import annotations

import json

from bigmodel_cli.cli.argv import Invocation, parse
from bigmodel_cli.commands import SUBCOMMANDS
from bigmodel_cli.process_state import DDP_JOB_ENV


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


def test_a_non_zero_rank_of_torchrun_writes_to_scratch(monkeypatch):
    monkeypatch.delenv(DDP_JOB_ENV, raising=False)
    monkeypatch.setenv("RANK", "3")
    got = parse(["train", "model=mlp"], SUBCOMMANDS)
    assert got.command == "train" and got.arguments[0] == "model=mlp"
    assert any(a.startswith('hydra.run.dir="') and "bigmodel-rank3-" in a for a in got.arguments)
