"""resume=<run dir> | auto: which checkpoint a run continues from, and its CSV log trimmed to it.

The run continues in its own directory. The checkpoint is the newest one in checkpoints/ that
reads (a truncated or corrupt last.ckpt falls back to the previous good one, with a warning).
Lightning restores weights, optimizer, scheduler and loop state from it; the CSV log keeps the rows
logged before the checkpoint's step, so the continued run adds each later epoch exactly once.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from omegaconf import DictConfig, open_dict

from bigmodel_cli.atomic import atomic_path
from bigmodel_cli.checkpoints.files import newest_good_checkpoint, read_checkpoint
from bigmodel_cli.errors import UserError
from bigmodel_cli.process_state import is_rank_zero


def checkpoint_to_resume(cfg: DictConfig) -> str | None:
    """The ckpt_path for trainer.fit: from resume=..., else cfg.ckpt_path. Prints what it decided."""
    resume = cfg.get("resume")
    run_dir = Path(cfg.paths.output_dir)
    if not resume and requeued() and newest_good_checkpoint(run_dir / "checkpoints") is not None:
        # A SLURM job requeued after pre-emption or its time limit runs the same command again; a
        # run in the same directory (a sweep job, run_name=) goes on by itself, as with resume=auto.
        with open_dict(cfg):
            cfg.resume = resume = "auto"
        say(f"requeued SLURM job (restart {os.environ['SLURM_RESTART_COUNT']}): continuing {run_dir}")
    if not resume:
        return cfg.get("ckpt_path")
    if str(resume) != "auto" and not Path(resume).is_dir():
        raise UserError(
            f"resume={resume}: no run there; fix: give a run directory such as "
            f"outputs/train/<run>, or resume=auto run_name=<name>"
        )
    found = newest_good_checkpoint(run_dir / "checkpoints")
    if found is None:
        # Killed before its first checkpoint: nothing was kept, so running it again from its first
        # step, in its own directory, is exactly continuing it.
        say(f"resume={resume}: no checkpoint in {run_dir}/checkpoints yet; starting fresh from the first step")
        return cfg.get("ckpt_path")
    checkpoint = read_checkpoint(found)
    say(f"resuming {run_dir} from {found} (epoch {checkpoint.get('epoch')}, step {checkpoint.get('global_step')})")
    return str(found)


def say(line: str) -> None:
    """What resuming decided, once per run (every DDP rank decides the same)."""
    if is_rank_zero():
        print(line)


def requeued() -> bool:
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


def trim_csv_logs(trainer, checkpoint: dict | None) -> None:
    """Keep the CSV rows logged before the checkpoint's step (CSVLogger would delete the file), and
    the checkpointed epoch's training row where the kill came before it was written.
    Rank 0 alone: it writes the log, and two ranks rewriting one file at once lose its rows."""
    if not checkpoint or not is_rank_zero():
        return
    from pytorch_lightning.loggers import CSVLogger

    step = int(checkpoint.get("global_step", 0))
    pending = checkpoint.get("epoch_row")
    for logger in trainer.loggers:
        if not isinstance(logger, CSVLogger):
            continue
        path = Path(logger.log_dir) / "metrics.csv"
        header, rows = [], []
        if path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                header = list(reader.fieldnames or [])
                rows = [row for row in reader if row.get("step") and int(float(row["step"])) < step]
        if pending and not any(holds(row, pending) for row in rows):
            header = sorted({*header, *pending})  # Lightning's order: it sorts its keys at each save
            rows.append(pending)
        if not header:
            continue
        writer = logger.experiment  # creating it removes the old file
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:  # a kill now loses no rows
            out = csv.DictWriter(f, fieldnames=header)
            out.writeheader()
            out.writerows(rows)
        writer.metrics_keys = header


def holds(row: dict[str, str], logged: dict[str, float]) -> bool:
    """The CSV row is the logged row: same step, and a value in each of its columns."""
    return int(float(row["step"])) == int(logged["step"]) and all(row.get(key) not in (None, "") for key in logged)
