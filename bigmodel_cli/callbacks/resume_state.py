"""What a checkpoint needs beyond Lightning's own state for a resumed run to end exactly where the
run left alone ends: the random generators, the epoch's metric accumulators, the last logged metrics.

The random state: a resumed run draws the same random numbers as the run left alone (dropout,
batch augmentation, mixup/cutmix, masking, per-sample transforms without workers).

Lightning checkpoints weights, optimizer, scheduler, loops and callback states, but not the random
generators. The data order does not need them: every loader here draws its order from a generator
of its own seeded with (seed, epoch). What is left is the global generators, which this callback
captures when a checkpoint is written and restores in `on_train_start` after loading one: the
last hook that runs before the resumed run fetches its next batch both when the checkpoint is
from mid-epoch and from an epoch's end (Lightning skips on_train_epoch_start when it resumes
mid-epoch). In the run left alone nothing between the save and that fetch draws from them
(validation is over; loaders do not draw), so both runs continue from the same state. It runs
before any other callback (train.run puts it first).

The metrics: a run killed after its last epoch was saved has nothing left to fit when resumed;
its final training and validation metrics come from the checkpoint (`resumed_metrics`). An
epoch-end checkpoint is written before Lightning logs the epoch's training row, so a kill between
the two (under DDP: a rank lost while rank zero writes the file) would lose that row; the
checkpoint carries it (`epoch_row`) and resuming writes it to the CSV log when it is missing.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


def capture() -> dict[str, Any]:
    """Every global generator a training step may draw from, as plain containers and tensors
    (checkpoints load with weights_only=True)."""
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": _python_state(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def metric_states(module: torch.nn.Module) -> dict[str, dict[str, Any]]:
    """The accumulated state of every torchmetrics Metric in the module (the epoch's sums so far:
    a run resumed mid-epoch reports the whole epoch's training metrics, not only its own part)."""
    from torchmetrics import Metric

    states = {}
    for name, metric in module.named_modules():
        if not isinstance(metric, Metric):
            continue
        if hasattr(metric, "flush"):  # BatchedUpdates: held batches into the wrapped metric first
            metric.flush()
        values = {
            key: [t.detach().cpu().clone() for t in value] if isinstance(value, list) else value.detach().cpu().clone()
            for key, value in metric.metric_state.items()
        }
        states[name] = {"values": values, "updates": int(metric._update_count)}
    return states


def restore_metric_states(module: torch.nn.Module, states: dict[str, dict[str, Any]]) -> None:
    modules = dict(module.named_modules())
    for name, state in states.items():
        metric = modules[name]
        device = metric.device
        for key, value in state["values"].items():
            setattr(metric, key, [t.to(device) for t in value] if isinstance(value, list) else value.to(device))
        metric._update_count = state["updates"]
        metric._computed = None


def epoch_row(trainer: pl.Trainer) -> dict[str, float]:
    """The row Lightning logs next, at the epoch's end: the epoch-level metrics, with the epoch and
    the step it logs them at (one before the step counter, as Lightning's fit loop does)."""
    logged = trainer._logger_connector.metrics["log"]  # every rank computes it: metrics sync
    row = {name: float(value) for name, value in logged.items() if value.numel() == 1}
    return {**row, "epoch": trainer.current_epoch, "step": trainer.fit_loop.epoch_loop._batches_that_stepped - 1}


class ResumeState(pl.Callback):
    """Saves, per rank, the global random generators and the epoch's metric accumulators in each
    checkpoint, and the logged metrics once; restores the first two when training resumes and keeps
    the logged metrics for the run's summary."""

    def __init__(self) -> None:
        self._to_restore: dict[str, Any] | None = None
        self._trainer: pl.Trainer | None = None
        self._module: torch.nn.Module | None = None
        self.resumed_metrics: dict[str, float] = {}

    @property
    def state_key(self) -> str:
        return "ResumeState"

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._trainer, self._module = trainer, pl_module

    def _epoch_metric_states(self) -> dict:
        """The metric accumulators when the checkpoint is written at the end of a training batch
        (the resumed run goes on in this epoch); none at an epoch's end, where the run left alone
        computes and resets them before the next epoch (and the resumed run starts that epoch)."""
        if self._module is None:
            return {}
        progress = self._trainer.fit_loop.epoch_loop.batch_progress.current
        return metric_states(self._module) if progress.completed < progress.processed else {}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint["logged_metrics"] = {
            name: float(value) for name, value in trainer.callback_metrics.items() if value.numel() == 1
        }
        epoch = trainer.fit_loop.epoch_progress.current
        if epoch.processed > epoch.completed:  # at the epoch's end, its training row still to log
            checkpoint["epoch_row"] = epoch_row(trainer)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self.resumed_metrics = dict(checkpoint.get("logged_metrics", {}))

    def state_dict(self) -> dict[str, Any]:
        state = {"random": capture(), "metrics": self._epoch_metric_states()}
        # Each rank draws its own dropout masks and sums its own shard's metrics; rank zero writes
        # the checkpoint, so it gathers every rank's state (Lightning builds a checkpoint's
        # contents on all ranks at once).
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            states: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(states, state)
            return {"ranks": dict(enumerate(states))}
        return {"ranks": {0: state}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._to_restore = state_dict.get("ranks", {}).get(self._rank())

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The loaders' positions: Lightning applies them when it sets up the training data, but a
        # schedule over the whole run asks for its length (estimated_stepping_batches) while the
        # optimizers are built, which sets the data up before the checkpoint is loaded, and the
        # positions were then never applied (the resumed epoch replayed its first batches). Our
        # loaders draw their order lazily, at the first batch, so applying them here is in time.
        trainer.fit_loop._load_combined_loader_states()
        if self._to_restore is not None:
            restore(self._to_restore["random"])
            restore_metric_states(pl_module, self._to_restore["metrics"])
            self._to_restore = None

    @staticmethod
    def _rank() -> int:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank()
        return 0
