"""The compress group while training: `compress=prune` zeroes the smallest weights of every
Linear/Conv/Embedding layer of the backbone (ranked together, Lightning's ModelPruning with global
L1), a little at the start of each epoch from `start_epoch` to `end_epoch` on a cubic schedule
(large steps first, small ones near the end) until `amount` of them are zero; the remaining epochs
train the surviving weights. "Best" is chosen among the epochs at full sparsity only, so the tested
and saved best checkpoint is the pruned model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pytorch_lightning.callbacks import ModelPruning
from torch import nn

from bigmodel_cli.config.contracts import keys_group_settings
from bigmodel_cli.errors import UserError, choices_text

METHODS = ("none", "prune")
PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE)]


def cubic_sparsity(target: float, step: int, steps: int) -> float:
    """The sparsity after `step` of `steps` pruning steps (Zhu & Gupta's gradual schedule)."""
    return target * (1 - (1 - step / steps) ** 3)


@dataclass(frozen=True)
class Compress:
    method: str = "none"
    amount: float = 0.5  # prune: the fraction of prunable weights that ends at zero
    start_epoch: int = 1  # prune: the first epoch that starts with a pruning step
    end_epoch: int | None = None  # prune: the last one (null: half-way through the run)

    @classmethod
    def from_config(cls, config) -> Compress:
        made = cls(**keys_group_settings(config, "compress", cls))
        if made.method not in METHODS:
            raise UserError(
                f"compress.method={made.method} is not known; valid choices: {choices_text(METHODS)} (fix: compress=prune)"
            )
        if made.method == "prune" and not 0 < made.amount < 1:
            raise UserError(
                f"compress.amount={made.amount} is not a fraction of the weights; fix: a number between 0 and 1, e.g. compress.amount=0.5"
            )
        return made

    def callback(self):
        if self.method == "prune":
            return GradualPruning(float(self.amount), int(self.start_epoch), self.end_epoch)
        return None


class GradualPruning(ModelPruning):
    def __init__(self, amount: float, start_epoch: int = 1, end_epoch: int | None = None):
        # No lottery-ticket rewind: the survivors keep their trained values.
        super().__init__("l1_unstructured", amount=self.step_amount, use_lottery_ticket_hypothesis=False)
        self.target, self.start_epoch, self.end_epoch = amount, start_epoch, end_epoch

    def setup(self, trainer, pl_module, stage: str) -> None:
        # The backbone's Linear/Conv/Embedding weights, not norms, biases or the module's metrics.
        self._parameters_to_prune = prunable_weights(pl_module.backbone)
        last = max(0, (trainer.max_epochs or 1) - 1)
        self.first = min(self.start_epoch, last)
        end = self.end_epoch if self.end_epoch is not None else max(self.first, last // 2)
        self.last = min(max(end, self.first), last)

    def step_amount(self, epoch: int) -> float:
        """The fraction of the still-unpruned weights to prune at the start of `epoch` (0: none)."""
        if not self.first <= epoch <= self.last:
            return 0.0
        steps, step = self.last - self.first + 1, epoch - self.first + 1
        before, after = cubic_sparsity(self.target, step - 1, steps), cubic_sparsity(self.target, step, steps)
        return 1 - (1 - after) / (1 - before)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._run_pruning(trainer.current_epoch)
        if trainer.current_epoch == self.last:
            forget_best(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Pruning happens at epoch starts, so each epoch's validation and checkpoint see it."""


def forget_best(trainer) -> None:
    """Best-checkpoint tracking starts afresh: a denser earlier epoch cannot stay "best"."""
    for checkpoint in trainer.checkpoint_callbacks:
        if checkpoint.monitor is None:
            continue
        checkpoint.best_k_models, checkpoint.best_model_path, checkpoint.best_model_score = {}, "", None
        checkpoint.kth_best_model_path = ""
        checkpoint.kth_value = torch.tensor(torch.inf if checkpoint.mode == "min" else -torch.inf)
