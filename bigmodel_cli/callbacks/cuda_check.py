"""SettledCudaCheck: stop asking NVML "is CUDA available?" on every optimizer step.

Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 when it is imported, so that checking for a GPU
before training does not initialise CUDA in a process that may fork later. With it set, every
torch.optim step of Adam/AdamW (its graph-capture health check) asks NVML, loading the NVML library
again each time: 3-5% of a small model's training step on a CPU (py-spy profiles of the MLP
epochs scripts/bench.py times). Once the run's device is settled, that answer can no longer change what the
process does: on a GPU, CUDA is initialised already; on a machine NVML finds no GPU on, the CUDA
runtime's own (cached) count says the same. There the check goes back to the runtime's for the
fit and is restored after. A CPU run on a machine with GPUs keeps the NVML check.
"""

from __future__ import annotations

import os

import pytorch_lightning as pl

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


class SettledCudaCheck(pl.Callback):
    def __init__(self):
        self.saved: str | None = None  # the value to put back, while the fit runs with "0"

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import torch

        if os.environ.get(NVML_CHECK) != "1":
            return
        if trainer.strategy.root_device.type == "cuda" or not torch.cuda.is_available():
            self.saved, os.environ[NVML_CHECK] = os.environ[NVML_CHECK], "0"

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.restore()

    def restore(self) -> None:
        if self.saved is not None:
            os.environ[NVML_CHECK], self.saved = self.saved, None
