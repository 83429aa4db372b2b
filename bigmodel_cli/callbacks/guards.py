"""Callbacks that stop training safely: on a non-finite loss (before the bad step is taken, so no
checkpoint is overwritten with NaN weights) and on SIGTERM / SIGUSR1 / SIGUSR2 (after saving a
checkpoint to resume from). Both end in a UserError that names the step and the checkpoint to resume from."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pytorch_lightning as pl

from bigmodel_cli.callbacks.last_checkpoint import LatestCheckpoint, ends_epoch
from bigmodel_cli.errors import UserError

STOP_SIGNALS = tuple(
    s for s in (getattr(signal, name, None) for name in ("SIGTERM", "SIGUSR1", "SIGUSR2")) if s is not None
)


class NonFiniteLoss(UserError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(UserError):
    """A stop signal arrived; a checkpoint was saved first."""


def last_good_checkpoint(trainer: pl.Trainer) -> str:
    saved = [c for c in trainer.checkpoint_callbacks if c.best_model_path]
    latest = [c.best_model_path for c in saved if isinstance(c, LatestCheckpoint)]
    return (latest or [c.best_model_path for c in saved] or ["none saved yet"])[0]


class NonFiniteLossGuard(pl.Callback):
    """Stops at the first NaN/inf loss. On the CPU the loss is read every step, before backward and
    the optimizer step. On an accelerator reading it is a host sync per step, so each step's check
    stays on the device and is read every `every` steps (default: the trainer's log_every_n_steps,
    where logging reads the loss anyway) and before anything is saved or validated: a bad stretch
    of steps never reaches a checkpoint, and the error names the steps it was in."""

    def __init__(self, every: int | None = None):
        self.every = every
        self.pending: tuple[int, object] | None = None  # (first unchecked step, device flag: any non-finite)

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss) -> None:
        every = self.every or (1 if loss.device.type == "cpu" else trainer.log_every_n_steps)
        if every <= 1:
            value = float(loss.detach())
            if not math.isfinite(value):
                self.stop(trainer, f"training loss is {value} at step {trainer.global_step}", "stopped before the step")
            return
        import torch

        bad = ~torch.isfinite(loss.detach())
        first = self.pending[0] if self.pending else trainer.global_step
        self.pending = (first, bad if self.pending is None else self.pending[1] | bad)
        if (trainer.global_step + 1) % every == 0:
            self.check(trainer)

    def check(self, trainer: pl.Trainer) -> None:
        """Read the pending device flag (one sync for the steps since the last read)."""
        if self.pending is None:
            return
        (first, bad), self.pending = self.pending, None
        if bool(bad):
            self.stop(
                trainer,
                f"training loss became NaN or infinite between step {first} and step {trainer.global_step}",
                "stopped before anything was saved",
            )

    def stop(self, trainer: pl.Trainer, what: str, when: str) -> None:
        raise NonFiniteLoss(
            f"{what} (epoch {trainer.current_epoch}); {when}, last good checkpoint: "
            f"{last_good_checkpoint(trainer)} (not overwritten); "
            f"fix: lower optimizer.lr, set trainer.gradient_clip_val=1.0, or check the data"
        )

    def on_validation_start(self, trainer, pl_module) -> None:
        self.check(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.check(trainer)  # raising here leaves the file unwritten

    def on_train_end(self, trainer, pl_module) -> None:
        self.check(trainer)


class SameStart(pl.Callback):
    """Every rank runs in the same directory from the same checkpoint, or every rank stops with one
    line naming what differs (checked once the process group exists, before a checkpoint loads).
    A module-level class: ddp_spawn pickles the trainer's callbacks."""

    def __init__(self, run_dir: str, ckpt_path: str | None):
        self.start = (run_dir, ckpt_path)

    def setup(self, trainer, pl_module, stage: str) -> None:
        import torch.distributed as dist

        if trainer.world_size <= 1 or not dist.is_initialized():
            return
        starts: list = [None] * trainer.world_size
        dist.all_gather_object(starts, self.start)
        other = next((rank for rank, start in enumerate(starts) if tuple(start) != tuple(starts[0])), None)
        if other is None:
            return
        (dir0, ckpt0), (dir1, ckpt1) = starts[0], starts[other]
        raise UserError(
            f"the ranks disagree on where to start: rank 0 runs in {dir0} from {ckpt0 or 'no checkpoint'}, "
            f"rank {other} in {dir1} from {ckpt1 or 'no checkpoint'}; fix: start every rank with "
            f"the same command (resume=<run dir> or resume=auto run_name=<name>)"
        )


class SaveOnSignal(pl.Callback):
    """On SIGTERM, SIGUSR1 or SIGUSR2 (SLURM's and submitit's warnings before a time limit or a
    pre-emption) save last.ckpt at the end of the current batch on every rank, hand the job back to
    the scheduler (SLURM: `scontrol requeue`; submitit: its own handler, which requeues), then stop
    with TrainingInterrupted naming the checkpoint. The saved step is where the resumed run starts.

    Ranks agree on the batch to stop at (the flag is reduced across them after every batch), so
    a signal that reaches one rank first cannot leave the others waiting in a collective."""

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

    def _agreed_signal(self, trainer: pl.Trainer) -> int | None:
        """The signal any rank received (the same answer on every rank)."""
        received = self.received or 0
        if trainer.world_size > 1:
            import torch
            import torch.distributed as dist

            flag = torch.tensor([received], device=trainer.strategy.root_device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            received = int(flag.item())
        return received or None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if ends_epoch(trainer):  # saved at the next batch's end instead, after this epoch's validation
            return
        received = self._agreed_signal(trainer)
        if received is None:
            return
        name = signal.Signals(received).name
        latest = next((c for c in trainer.checkpoint_callbacks if isinstance(c, LatestCheckpoint)), None)
        if latest is not None:
            latest.save_now(trainer)
        else:
            trainer.save_checkpoint(self.checkpoint_path)
        handed_back = self._hand_back(trainer, received)
        raise TrainingInterrupted(
            f"received {name} at step {trainer.global_step} (epoch {trainer.current_epoch}); saved "
            f"{self.checkpoint_path}{handed_back}; fix: continue with "
            f"`bigmodel train resume={Path(self.checkpoint_path).parent.parent}`"
        )

    def _hand_back(self, trainer: pl.Trainer, signum: int) -> str:
        """Give the job back to whoever scheduled it, after the checkpoint is on disk."""
        previous = self._previous.get(signum)
        self._restore()
        if callable(previous) and not _is_lightnings(previous):
            previous(signum, None)  # e.g. submitit's: requeues its job with the same arguments
            return ""
        if signum != signal.SIGTERM and os.environ.get("SLURM_JOB_ID") and trainer.is_global_zero:
            return requeue_slurm_job()
        return ""


def _is_lightnings(handler) -> bool:
    """Lightning's own signal handlers (its SLURM auto-requeue saves an hpc checkpoint of its own)."""
    return type(handler).__module__.startswith(("pytorch_lightning.", "lightning."))


def requeue_slurm_job() -> str:
    """`scontrol requeue` this SLURM job (an array task by its array id), as Lightning's auto-requeue does."""
    import subprocess

    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ["SLURM_JOB_ID"]
    done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if done.returncode != 0:
        return f"; `scontrol requeue {job}` failed: {(done.stderr or done.stdout).strip()}"
    return f"; SLURM job {job} requeued (it resumes from this checkpoint)"
