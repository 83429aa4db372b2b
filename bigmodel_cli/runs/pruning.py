"""How a trial that its pruner stopped ends its job: not a failure, not a completed run."""

from __future__ import annotations


class TrialPruned(Exception):
    """Raised by a job its Optuna pruner stopped, once its metrics are written. The Hydra task function
    returns it (so the launcher hands it to the sweeper, which tells the study PRUNED) and run.json
    records `"status": "pruned"`."""

    def __init__(self, epoch: int, value: float | None):
        super().__init__(epoch, value)
        self.epoch = epoch
        self.value = value

    def __str__(self) -> str:
        return f"pruned after epoch {self.epoch} (objective {self.value})"
