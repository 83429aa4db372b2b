"""Callbacks that stop training safely: on a non-finite loss (before the bad step is taken, so no
checkpoint is overwritten with NaN weights) and on SIGTERM / SIGUSR1 (after saving a checkpoint to
resume from). Both end in a UserError that names the step and the checkpoint to resume from."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytorch_lightning as pl

from bigmodel_cli.errors import UserError

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s)


class NonFiniteLoss(UserError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(UserError):
    """A stop signal arrived; a checkpoint was saved first."""


def last_good_checkpoint(trainer: pl.Trainer) -> str:
    callback = trainer.checkpoint_callback
    path = (callback.last_model_path or callback.best_model_path) if callback is not None else ""
    return path or "none saved yet"


class NonFiniteLossGuard(pl.Callback):
    """Stops at the first NaN/inf loss, before backward and the optimizer step."""

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss) -> None:
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(
                f"training loss is {value} at step {trainer.global_step} (epoch {trainer.current_epoch}); "
                f"stopped before the step, last good checkpoint: {last_good_checkpoint(trainer)} (not overwritten); "
                f"fix: lower optimizer.lr, set trainer.gradient_clip_val=1.0, or check the data"
            )


class SaveOnSignal(pl.Callback):
    """On SIGTERM or SIGUSR1 (SLURM's pre-emption warning) save `checkpoint_path` at the end of the
    current batch, then stop with TrainingInterrupted naming the checkpoint."""

    def __init__(self, checkpoint_path: str | Path, signals: tuple[int, ...] = STOP_SIGNALS):
        self.checkpoint_path = str(checkpoint_path)
        self.signals = signals
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        self.received = signum

    def on_train_start(self, trainer, pl_module) -> None:
        # After Lightning's own signal connector, so this handler is the one that runs while training.
        try:
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handler)
        except ValueError:  # not the main thread: leave signals to Lightning
            self._previous.clear()

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _check(self, trainer: pl.Trainer) -> None:
        if self.received is None:
            return
        name = signal.Signals(self.received).name
        trainer.save_checkpoint(self.checkpoint_path)
        raise TrainingInterrupted(
            f"received {name} at step {trainer.global_step} (epoch {trainer.current_epoch}); saved "
            f"{self.checkpoint_path}; fix: continue with `bigmodel train resume={Path(self.checkpoint_path).parent.parent}`"
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check(trainer)
