"""bigmodel predict: class probabilities of a checkpoint on one split, written to predictions.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from omegaconf import DictConfig

from bigmodel_cli.atomic import atomic_path
from bigmodel_cli.commands.job import prepare, print_summary, task_main
from bigmodel_cli.errors import UserError
from bigmodel_cli.process_state import is_rank_zero
from bigmodel_cli.training.assembly import assemble_checkpoint
from bigmodel_cli.training.restore import require_checkpoint_path

SPLITS = ("train", "val", "test")


def write_predictions(path: Path, probabilities: torch.Tensor) -> None:
    """CSV: index, predicted class, one probability column per class."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "predicted", *(f"prob_{c}" for c in range(probabilities.shape[1]))])
        for index, (row, predicted) in enumerate(zip(probabilities.tolist(), probabilities.argmax(1).tolist())):
            writer.writerow([index, predicted, *(f"{p:.6f}" for p in row)])


def run(cfg: DictConfig) -> dict[str, float]:
    require_checkpoint_path(cfg)
    if cfg.predict_split not in SPLITS:
        raise UserError(f"predict_split={cfg.predict_split} is not a split; valid choices: {', '.join(SPLITS)}")
    prepare(cfg)
    restored = assemble_checkpoint(cfg)
    restored.datamodule.predict_split = cfg.predict_split
    batches = restored.trainer.predict(restored.module, datamodule=restored.datamodule)
    probabilities = torch.cat(batches).float()
    path = Path(cfg.paths.output_dir) / "predictions.csv"
    if is_rank_zero():
        write_predictions(path, probabilities)
    metrics = {"predict/count": float(len(probabilities))}
    print_summary(f"bigmodel predict: {path}", metrics)
    return metrics


def main(cfg: DictConfig):
    return task_main(run, cfg)
