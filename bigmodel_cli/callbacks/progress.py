"""Lightning's rich progress bar, redrawn at most `refresh_rate` times a second.

Lightning's RichProgressBar updates its bars and re-reads the progress-bar metrics on every batch
and redraws 100 times a second from a background thread: on a small model on two CPU cores that
was as much time as the training itself. This one does that work only when a redraw is due (and
on an epoch's last batch), so the bar looks the same and costs next to nothing per step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pytorch_lightning.callbacks import RichProgressBar as LightningRichProgressBar


class RichProgressBar(LightningRichProgressBar):
    def __init__(self, refresh_rate: int = 10, **kwargs):
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self._last_draw = float("-inf")

    def _due(self, batch_idx: int, total: Callable[[], float]) -> bool:
        # A disabled bar (every rank but zero under DDP) never draws; Lightning's batch totals of
        # the current dataloader are only tracked while the bar is enabled, so do not even read them.
        if self.is_disabled:
            return False
        now = time.monotonic()
        last = batch_idx + 1 >= total()
        if last or now - self._last_draw >= 1.0 / max(self.refresh_rate, 1):
            self._last_draw = now
            return True
        return False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self._due(batch_idx, lambda: self.total_train_batches):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self._due(batch_idx, lambda: self.total_val_batches_current_dataloader):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._due(batch_idx, lambda: self.total_test_batches_current_dataloader):
            super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._due(batch_idx, lambda: self.total_predict_batches_current_dataloader):
            super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
