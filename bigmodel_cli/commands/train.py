"""bigmodel train: fit, validate every epoch, then test the best checkpoint."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from bigmodel_cli.callbacks.guards import NonFiniteLossGuard, SaveOnSignal
from bigmodel_cli.checkpoints.files import load_checkpoint
from bigmodel_cli.checkpoints.plugin import AtomicCheckpointIO
from bigmodel_cli.commands import lr_find
from bigmodel_cli.commands.job import collect, prepare, print_summary, task_main
from bigmodel_cli.process_state import is_rank_zero
from bigmodel_cli.runs import records
from bigmodel_cli.runs.resume import checkpoint_to_resume, trim_csv_logs
from bigmodel_cli.training.assembly import allowed, build_datamodule, build_module, build_trainer, plain, probe


def run(cfg: DictConfig) -> dict[str, float]:
    prepare(cfg)
    ckpt_path = checkpoint_to_resume(cfg)
    datamodule = build_datamodule(cfg.data, allowed(cfg))
    module = build_module(plain(cfg))
    probe(module, datamodule)
    trainer = build_trainer(cfg, plugins=[AtomicCheckpointIO()])
    if is_rank_zero():
        print(global_batch_line(cfg.data.batch_size, trainer, module.full_batch))
    trainer.callbacks.extend(
        [NonFiniteLossGuard(), SaveOnSignal(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")]
    )
    trim_csv_logs(trainer, ckpt_path if cfg.get("resume") else None)
    if lr_find.wants_search(cfg):
        lr_find.tune(cfg, module, datamodule, trainer)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = collect(trainer.callback_metrics, ("train/", "val/"))
    checkpoint = trainer.checkpoint_callback
    notes = {}
    if checkpoint is not None and checkpoint.best_model_score is not None:
        metrics[f"{checkpoint.monitor}_best"] = float(checkpoint.best_model_score)
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


def global_batch_line(batch_size: int, trainer, full_batch: bool = False) -> str:
    """How the per-device batch adds up across devices, nodes and gradient accumulation; under
    full-batch gd (one step per epoch) the step's batch is the whole training split."""
    devices, nodes = trainer.num_devices, trainer.num_nodes
    spread = (
        f"{batch_size} per device x {devices} device{'s' if devices > 1 else ''} "
        f"x {nodes} node{'s' if nodes > 1 else ''}"
    )
    if full_batch:
        return f"full batch: one optimizer step per epoch on the whole training split, read in batches of {spread}"
    accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
    line = f"global batch {batch_size * devices * nodes * accumulate} = {spread}"
    return line + (f" x {accumulate} accumulated batches" if accumulate > 1 else "")


def main(cfg: DictConfig):
    return task_main(run, cfg)
