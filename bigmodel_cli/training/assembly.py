"""One assembly step: a run's config becomes its complete pieces here, for every subcommand.

The config is read once: each keys group into its settings object (training/settings.py), then
each piece is built from its group (training/pieces.py) and handed what it reads. What comes out
is ready to run: the Trainer has every callback in its list already, and nothing patches it later.

- `assemble_training` (bigmodel train): where to resume from, the data, the module (another run's
  weights for init_from=, the teacher for distill.teacher=), the checks before training, the
  backbone compiled for compile=true, the Trainer with the run's guards and the trial reporter, MLflow tags, the CSV log trimmed for a
  resume, the lr for optimizer.lr=auto;
- `assemble_pieces` (bigmodel lr-find): data, module and Trainer of a fresh run;
- `assemble_checkpoint` (validate, test, predict): a checkpoint's module, its data and a Trainer;
  the other commands after training use training/restore.py's `restore` alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from bigmodel_cli.callbacks.cuda_check import SettledCudaCheck
from bigmodel_cli.callbacks.guards import NonFiniteLossGuard, SameStart, SaveOnSignal
from bigmodel_cli.callbacks.header import RunHeader
from bigmodel_cli.callbacks.resume_state import ResumeState
from bigmodel_cli.checkpoints.files import read_checkpoint
from bigmodel_cli.checkpoints.plugin import AtomicCheckpointIO
from bigmodel_cli.lightning_modules.compiling import compile_backbone
from bigmodel_cli.lightning_modules.test_time import ViewSettings
from bigmodel_cli.process_state import is_rank_zero
from bigmodel_cli.runs import records, tracking
from bigmodel_cli.runs.resume import checkpoint_to_resume, trim_csv_logs
from bigmodel_cli.search.trial_reports import ReportToTrial, trial_callback
from bigmodel_cli.training import lr_search
from bigmodel_cli.training.distill import attach_teacher
from bigmodel_cli.training.init_from import hand_over_tokenizer, head_choice, initialise_from, transfer_table
from bigmodel_cli.training.pieces import (
    allowed,
    attach_views,
    build_datamodule,
    build_module,
    build_trainer,
    plain,
    probe,
)
from bigmodel_cli.training.restore import restore, run_or_chosen
from bigmodel_cli.training.settings import RunSettings


@dataclass
class Pieces:
    datamodule: Any
    module: Any
    trainer: Any


@dataclass
class TrainingRun(Pieces):
    settings: RunSettings
    ckpt_path: str | None  # the checkpoint fit continues from (resume=, a requeued job), or None
    resume_state: ResumeState
    reports: ReportToTrial | None  # a job of an Optuna sweep: reports to its trial

    def fit(self) -> None:
        self.trainer.fit(self.module, datamodule=self.datamodule, ckpt_path=self.ckpt_path)


def assemble_training(cfg: DictConfig) -> TrainingRun:
    settings = RunSettings.read(cfg)
    ckpt_path = checkpoint_to_resume(cfg)
    head_choice(cfg)  # a misspelt init_head is an error even without init_from
    datamodule = build_datamodule(cfg.data, allowed(cfg))
    module = build_module(plain(cfg), settings)
    attach_views(module, settings.views, datamodule)
    if cfg.get("init_from"):
        start_from(cfg, module, datamodule)
    if cfg.distill.teacher:
        distilling = attach_teacher(cfg, module, datamodule)
        if is_rank_zero():
            print(distilling)
    probe(module, datamodule)
    resume_state = ResumeState()
    reports = trial_callback(cfg, settings.search)
    run_dir = os.path.abspath(cfg.paths.output_dir)
    trainer = build_trainer(
        cfg,
        settings,
        # The random state first: it is restored before any other callback's epoch start can draw.
        first=[resume_state, RunHeader(cfg.paths.output_dir, hydra_choice("model"), hydra_choice("data"))],
        last=[
            NonFiniteLossGuard(),
            SaveOnSignal(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"),
            SettledCudaCheck(),
            SameStart(run_dir, os.path.abspath(ckpt_path) if ckpt_path else None),
            *([reports] if reports is not None else []),
        ],
        plugins=[AtomicCheckpointIO()],
    )
    # After the Trainer: a machine that cannot run the accelerator asked for says so before compiling.
    compile_backbone(module, settings.compile)
    tracked = tracking.start(trainer, cfg)
    if tracked:
        records.update_run(cfg.paths.output_dir, mlflow=tracked)
    resumed = read_checkpoint(ckpt_path) if ckpt_path else None  # read once, for the log and lr=auto
    trim_csv_logs(trainer, resumed if cfg.get("resume") else None)
    if lr_search.wants_search(cfg):
        if resumed is not None:
            lr_search.reuse(cfg, module, resumed)
        else:
            lr_search.tune(cfg, module, datamodule, trainer)
    return TrainingRun(datamodule, module, trainer, settings, ckpt_path, resume_state, reports)


def assemble_pieces(cfg: DictConfig) -> Pieces:
    settings = RunSettings.read(cfg)
    datamodule = build_datamodule(cfg.data, allowed(cfg))
    module = build_module(plain(cfg), settings)
    probe(module, datamodule)
    trainer = build_trainer(cfg, settings)
    compile_backbone(module, settings.compile)
    return Pieces(datamodule, module, trainer)


def assemble_checkpoint(cfg: DictConfig) -> Pieces:
    module, datamodule = restore(cfg)
    attach_views(module, ViewSettings.from_config({"tta": run_or_chosen(cfg, module.config, "tta")}), datamodule)
    return Pieces(datamodule, module, build_trainer(cfg, RunSettings.read(cfg)))


def start_from(cfg: DictConfig, module, datamodule) -> None:
    """init_from=: the matching weights of another run (and its tokenizer), one table of what came along."""
    transfer = initialise_from(module, str(cfg.init_from), plain(cfg))
    hand_over_tokenizer(datamodule, transfer, str(cfg.init_from), cfg.data.get("vocab_size"))
    records.update_run(
        cfg.paths.output_dir,
        init_from={
            "source": str(cfg.init_from),
            "loaded": transfer.loaded,
            "reinitialised": [name for name, _, _ in transfer.reinitialised],
            "new_head": transfer.new_head,
            "unused": [name for name, _ in transfer.unused],
        },
    )
    if is_rank_zero():
        from rich.console import Console

        Console().print(transfer_table(transfer, str(cfg.init_from)))


def hydra_choice(group: str) -> str | None:
    """The option picked for a config group (`model=cnn` -> "cnn"); None outside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get(group)
