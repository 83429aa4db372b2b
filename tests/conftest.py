"""Shared fixtures: compose configs in-process exactly as the CLI would, and run tasks in-process.

Starting a process costs ~15 s of imports here, so almost every test calls `run(cfg)` or the CLI's
`main()` in this process; only what must be a separate process (no-torch start-up, the installed
wheel, DDP) starts one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from bigmodel_cli.config.catalogue import conf_dir
from bigmodel_cli.config.resolvers import register_resolvers
from bigmodel_cli.config.source import expanded_switches

# Overrides that make any training run take a few steps.
FAST = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.limit_predict_batches=2",
]
TWO_EPOCHS = [*[o for o in FAST if not o.startswith("trainer.max_epochs")], "trainer.max_epochs=2"]


@contextlib.contextmanager
def composed(task: str, overrides: list[str], run_dir: Path):
    """A composed config with HydraConfig set, as inside `bigmodel <task>`; output in run_dir."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name=task, overrides=expanded_switches(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(run_dir)
            cfg.paths.data_dir = str(run_dir / "data")
            del cfg["hydra"]
        run_dir.mkdir(parents=True, exist_ok=True)
        yield cfg
    GlobalHydra.instance().clear()


@pytest.fixture
def compose_cfg(tmp_path):
    """compose_cfg(task, overrides) -> context manager yielding the config (output in tmp_path/run)."""

    def make(task: str = "train", overrides: list[str] | None = None, name: str = "run"):
        return composed(task, list(overrides or []), tmp_path / name)

    return make


@pytest.fixture
def trained(compose_cfg, tmp_path):
    """A finished two-epoch run with a CSV log: (run dir, metrics)."""
    overrides = [*[o for o in TWO_EPOCHS if o != "logger=none"], "accelerator=cpu"]
    from bigmodel_cli.commands import train

    with compose_cfg("train", overrides, name="trained") as cfg:
        metrics = train.run(cfg)
    return tmp_path / "trained", metrics


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    """Run CLI calls from a scratch directory, so outputs/ lands there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli(in_tmp_cwd, capsys):
    """cli(*args) runs `bigmodel *args` in-process; returns (exit code, stdout, stderr)."""
    from bigmodel_cli.cli.main import main

    def call(*args: str):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


@pytest.fixture(autouse=True)
def no_leftover_distributed_state():
    """A DDP run in-process (accelerator=ddp with one device) leaves torch.distributed set up and
    Lightning's launcher variables (LOCAL_RANK, MASTER_PORT, ...) in os.environ; a later `bigmodel`
    subprocess inheriting LOCAL_RANK would wait forever for ranks nobody starts. Undo both."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def record_batches(monkeypatch, split: str = "training") -> list:
    """Every batch ClassificationModule.<split>_step receives, as detached (inputs, targets) copies."""
    from bigmodel_cli.lightning_modules.classifier import ClassificationModule

    seen = []
    original = getattr(ClassificationModule, f"{split}_step")

    def spy(self, batch, batch_idx, *args):
        seen.append((batch[0].detach().clone(), batch[1].detach().clone()))
        return original(self, batch, batch_idx, *args)

    monkeypatch.setattr(ClassificationModule, f"{split}_step", spy)
    return seen


def fitted(cfg, monkeypatch):
    """Run train.run(cfg) and capture the Trainer and module it used."""
    from bigmodel_cli.commands import train
    from bigmodel_cli.training import assembly

    seen = {}
    build_trainer, build_module = assembly.build_trainer, assembly.build_module

    def keep_trainer(*args, **kwargs):
        seen["trainer"] = build_trainer(*args, **kwargs)
        return seen["trainer"]

    def keep_module(*args, **kwargs):
        seen["module"] = build_module(*args, **kwargs)
        return seen["module"]

    monkeypatch.setattr(assembly, "build_trainer", keep_trainer)
    monkeypatch.setattr(assembly, "build_module", keep_module)
    metrics = train.run(cfg)
    return metrics, seen["trainer"], seen["module"]


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """(Shared by the session's after-training tests: export, compress, explain, distill) a run
    directory of the default `bigmodel train` with trainer.max_epochs=3: a real model whose
    accuracy and attributions mean something."""
    from bigmodel_cli.commands import train

    run_dir = tmp_path_factory.mktemp("digits") / "run"
    with composed("train", ["trainer.max_epochs=3"], run_dir) as cfg:
        train.main(cfg)  # as the CLI runs it: metrics.json too
    return run_dir
