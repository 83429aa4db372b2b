"""bigmodel train: fit, validate every epoch, then test the best checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from bigmodel_cli.callbacks.cuda_check import SettledCudaCheck
from bigmodel_cli.callbacks.guards import NonFiniteLossGuard, SameStart, SaveOnSignal
from bigmodel_cli.callbacks.header import RunHeader
from bigmodel_cli.callbacks.resume_state import ResumeState
from bigmodel_cli.checkpoints.files import load_checkpoint
from bigmodel_cli.checkpoints.plugin import AtomicCheckpointIO
from bigmodel_cli.commands import lr_find
from bigmodel_cli.commands.job import collect, prepare, print_summary, task_main
from bigmodel_cli.process_state import is_rank_zero
from bigmodel_cli.runs import records, tracking
from bigmodel_cli.runs.pruning import TrialPruned
from bigmodel_cli.runs.resume import checkpoint_to_resume, trim_csv_logs
from bigmodel_cli.search.trial_reports import trial_callback
from bigmodel_cli.training.assembly import allowed, build_datamodule, build_module, build_trainer, plain, probe
from bigmodel_cli.training.distill import attach_teacher
from bigmodel_cli.training.init_from import hand_over_tokenizer, initialise_from, transfer_table


def run(cfg: DictConfig) -> dict[str, float]:
    prepare(cfg)
    ckpt_path = checkpoint_to_resume(cfg)
    datamodule = build_datamodule(cfg.data, allowed(cfg))
    module = build_module(plain(cfg))
    if cfg.get("init_from"):
        start_from(cfg, module, datamodule)
    if cfg.distill.teacher:
        distilling = attach_teacher(cfg, module)
        if is_rank_zero():
            print(distilling)
    probe(module, datamodule)
    trainer = build_trainer(cfg, plugins=[AtomicCheckpointIO()])
    run_header = RunHeader(cfg.paths.output_dir, hydra_choice("model"), hydra_choice("data"))
    # The random state first: it is restored before any other callback's epoch start can draw.
    resume_state = ResumeState()
    trainer.callbacks[:0] = [resume_state, run_header]
    trainer.callbacks.extend(
        [
            NonFiniteLossGuard(),
            SaveOnSignal(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"),
            SettledCudaCheck(),
            SameStart(os.path.abspath(cfg.paths.output_dir), os.path.abspath(ckpt_path) if ckpt_path else None),
        ]
    )
    tracked = tracking.start(trainer, cfg)
    if tracked:
        records.update_run(cfg.paths.output_dir, mlflow=tracked)
    reports = trial_callback(cfg)
    if reports is not None:
        trainer.callbacks.append(reports)
    trim_csv_logs(trainer, ckpt_path if cfg.get("resume") else None)
    if lr_find.wants_search(cfg):
        if ckpt_path:
            lr_find.reuse(cfg, module, ckpt_path)
        else:
            lr_find.tune(cfg, module, datamodule, trainer)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    # A run resumed after its last epoch fits nothing: its metrics are the checkpoint's.
    metrics = collect(resume_state.resumed_metrics, ("train/", "val/")) | collect(
        trainer.callback_metrics, ("train/", "val/")
    )
    checkpoint = trainer.checkpoint_callback
    notes = {}
    if checkpoint is not None and checkpoint.best_model_score is not None:
        metrics[f"{checkpoint.monitor}_best"] = float(checkpoint.best_model_score)
    if reports is not None and reports.pruned_at is not None:  # a losing trial: no test, the sweep goes on
        records.write_metrics(cfg.paths.output_dir, metrics)
        print_summary(f"bigmodel train: {cfg.paths.output_dir} (trial pruned after epoch {reports.pruned_at})", metrics)
        raise TrialPruned(reports.pruned_at, reports.last_value)
    if cfg.get("test_after_fit", True):
        best = checkpoint.best_model_path if checkpoint is not None else ""
        if best:
            module.load_state_dict(load_checkpoint(best)["state_dict"])
        notes["tested"] = best or "final weights (no checkpoint was saved)"
        trainer.test(module, datamodule=datamodule, verbose=False)
        metrics.update(collect(trainer.callback_metrics, ("test/",)))
    if checkpoint is not None and checkpoint.best_model_path:
        records.update_run(cfg.paths.output_dir, best_checkpoint=checkpoint.best_model_path)
    print_summary(f"bigmodel train: {cfg.paths.output_dir}", metrics, notes)
    return metrics


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


def main(cfg: DictConfig):
    return task_main(run, cfg)
