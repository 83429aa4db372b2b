"""Lightning's rich progress bar, redrawn at most `refresh_rate` times a second.

Lightning's RichProgressBar updates its bars and re-reads the progress-bar metrics on every batch
and redraws 100 times a second from a background thread: on a small model on two CPU cores that
was as much time as the training itself. This one does that work only when a redraw is due (and
on an epoch's last batch), so the bar looks the same and costs next to nothing per step.

It shows three numbers on one line: the training loss, the validation loss and the objective (the
metric the best checkpoint is chosen by); every metric is in the final table and metrics.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pytorch_lightning.callbacks import RichProgressBar as LightningRichProgressBar
from pytorch_lightning.callbacks.progress.rich_progress import _RefreshThread


class PromptRefreshThread(_RefreshThread):
    """Lightning's redraw thread, woken by the bar's stop: Lightning's sleeps its whole period
    (1 / refresh_rate s), and the stop at the end of each stage waits for it (fit and test: up to
    0.2 s of every run)."""

    def run(self) -> None:
        while not self.done.wait(1 / self.refresh_per_second):
            if self.refresh_cond:
                with self.live._lock:
                    self.live.refresh()
                self.refresh_cond = False


class RichProgressBar(LightningRichProgressBar):
    def __init__(self, refresh_rate: int = 10, **kwargs):
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self._last_draw = float("-inf")

    def _init_progress(self, trainer) -> None:
        super()._init_progress(trainer)
        live = getattr(self.progress, "live", None)
        sleeper = getattr(live, "_refresh_thread", None)
        if sleeper is not None and not isinstance(sleeper, PromptRefreshThread):
            sleeper.stop()  # it ends after its current sleep; nothing waits for it
            live._refresh_thread = PromptRefreshThread(live, sleeper.refresh_per_second)
            live._refresh_thread.start()

    def configure_columns(self, trainer) -> list:
        # Description, bar, batches and elapsed time, then the metrics, on one line of an
        # 80-column terminal: the bar takes the width the text leaves, and the metrics never wrap.
        from rich.progress import TimeElapsedColumn
        from rich.table import Column

        description, bar, batches = super().configure_columns(trainer)[:3]
        bar.bar_width = None
        if self._metric_component is not None:
            self._metric_component._table_column = Column(no_wrap=True)
        return [description, bar, batches, TimeElapsedColumn()]

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        # A number logged without prog_bar (the language models' val/acc) is still shown: from the
        # logged metrics, read only for these keys and only when a redraw is due.
        logged = trainer.callback_metrics
        checkpoint = trainer.checkpoint_callback
        objective = getattr(checkpoint, "monitor", None) or "val/acc"
        wanted = (("loss", ("train/loss_step", "train/loss")), ("val/loss", ("val/loss",)), (objective, (objective,)))
        shown = {}
        for label, keys in wanted:
            value = next((metrics[k] for k in keys if k in metrics), None)
            if value is None:
                value = next((float(logged[k]) for k in keys if k in logged), None)
            if value is not None:
                shown[label] = value
        return shown

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
