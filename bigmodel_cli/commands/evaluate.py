"""bigmodel validate / test: evaluate a checkpoint on the validation or test split."""

from __future__ import annotations

from omegaconf import DictConfig

from bigmodel_cli.commands.job import collect, prepare, print_summary, task_main
from bigmodel_cli.training.assembly import assemble_checkpoint
from bigmodel_cli.training.restore import require_checkpoint_path


def run(cfg: DictConfig) -> dict[str, float]:
    require_checkpoint_path(cfg)
    prepare(cfg)
    restored = assemble_checkpoint(cfg)
    split = "val" if cfg.task_name == "validate" else "test"
    getattr(restored.trainer, cfg.task_name)(restored.module, datamodule=restored.datamodule, verbose=False)
    metrics = collect(restored.trainer.callback_metrics, (f"{split}/",))
    print_summary(f"bigmodel {cfg.task_name}: {cfg.ckpt_path}", metrics)
    return metrics


def main(cfg: DictConfig):
    return task_main(run, cfg)
