"""EpochTimer: wall time of every training epoch, measured inside the training process.

Add it to any run (`+callbacks.epoch_timer._target_=bigmodel_cli.callbacks.timing.EpochTimer
+callbacks.epoch_timer.path=epochs.json`); scripts/bench.py does, so start-up is left out of its
per-epoch numbers. An epoch runs from one `on_train_epoch_start` to the next (the last one to
`on_train_end`): its training steps, its validation, its logging and its checkpoint writes.
Its training steps alone are timed too, from the first batch's start to the last batch's end
(`step_seconds`): what steps/s compares with a loop that has no validation or checkpoints.
On a GPU the record also holds the peak memory allocated by tensors (torch.cuda.max_memory_allocated).
"""

from __future__ import annotations

import json
import time

import pytorch_lightning as pl

from bigmodel_cli.atomic import write_text


class EpochTimer(pl.Callback):
    def __init__(self, path: str | None = None):
        self.path = path
        self.starts: list[float] = []
        self.seconds: list[float] = []
        self.step_seconds: list[float] = []
        self.first_batch: float | None = None

    @staticmethod
    def _now(pl_module: pl.LightningModule) -> float:
        if pl_module.device.type == "cuda":  # queued kernels belong to the epoch that queued them
            import torch

            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def _close_epoch(self, now: float) -> None:
        if self.starts:
            self.seconds.append(now - self.starts[-1])

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = self._now(pl_module)
        self._close_epoch(now)
        self.starts.append(now)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if self.first_batch is None:
            self.first_batch = self._now(pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int):
        if batch_idx + 1 == trainer.num_training_batches and self.first_batch is not None:  # a sync on the last only
            self.step_seconds.append(self._now(pl_module) - self.first_batch)
            self.first_batch = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_epoch(self._now(pl_module))
        if self.path and trainer.is_global_zero:
            record = {
                "epoch_seconds": self.seconds,
                "step_seconds": self.step_seconds,
                "steps_per_epoch": int(trainer.num_training_batches),
            }
            if pl_module.device.type == "cuda":
                import torch

                record["peak_gpu_mib"] = torch.cuda.max_memory_allocated(pl_module.device) / 2**20
            write_text(self.path, json.dumps(record))
