"""What a checkpoint needs beyond Lightning's own state for a resumed run to end exactly where the
run left alone ends: the random generators and the last logged metrics.

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
its final training and validation metrics come from the checkpoint (`resumed_metrics`).
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


class ResumeState(pl.Callback):
    """Saves the global random generators and the logged metrics in each checkpoint; restores the
    generators when training resumes and keeps the metrics for the run's summary."""

    def __init__(self) -> None:
        self._to_restore: dict[str, Any] | None = None
        self.resumed_metrics: dict[str, float] = {}

    @property
    def state_key(self) -> str:
        return "ResumeState"

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint["logged_metrics"] = {
            name: float(value) for name, value in trainer.callback_metrics.items() if value.numel() == 1
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self.resumed_metrics = dict(checkpoint.get("logged_metrics", {}))

    def state_dict(self) -> dict[str, Any]:
        # Under DDP each rank draws its own dropout masks: rank zero writes the checkpoint, so it
        # gathers every rank's state (Lightning builds a checkpoint's contents on all ranks at once).
        state = capture()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            states: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(states, state)
            return {"ranks": dict(enumerate(states))}
        return {"ranks": {0: state}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ranks = state_dict.get("ranks", {})
        self._to_restore = ranks.get(self._rank())

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._to_restore is not None:
            restore(self._to_restore)
            self._to_restore = None

    @staticmethod
    def _rank() -> int:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank()
        return 0
