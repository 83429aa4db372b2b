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
from pytorch_lightning.callbacks.weight_averaging import WeightAveraging
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
    """The compress node; the keys of a method come from conf/compress/<method>.yaml."""

    method: str = "none"
    amount: float | None = None  # prune: the fraction of prunable weights that ends at zero
    start_epoch: int | None = None  # prune: the first epoch that starts with a pruning step
    end_epoch: int | None = None  # prune: the last one (null: half-way through the run)

    @classmethod
    def from_config(cls, config) -> Compress:
        made = cls(**keys_group_settings(config, "compress", cls, option_key="method"))
        if made.method not in METHODS:
            raise UserError(
                f"compress.method={made.method} is not known; valid choices: {choices_text(METHODS)} (fix: compress=prune)"
            )
        if made.method == "prune" and not 0 < float(made.amount) < 1:
            raise UserError(
                f"compress.amount={made.amount} is not a fraction of the weights; fix: a number between 0 and 1, e.g. compress.amount=0.5"
            )
        return made

    def callback(self):
        if self.method == "prune":
            return GradualPruning(float(self.amount), int(self.start_epoch), self.end_epoch)
        return None


class GradualPruning(ModelPruning):
    """Lightning's ModelPruning on the cubic schedule, with what it lacks to resume and to combine:

    - its state (the masks, the last epoch pruned) is in every checkpoint, and the masks are put
      back when a run resumes, so the resumed run prunes on from where it stopped;
    - an EMA of the weights (regularizer=ema) is pruned alongside the model, with the same masks,
      so the average stays as sparse as the model and pairs with it parameter by parameter;
    - early stopping waits for full sparsity: until then it is held at "improving", so a run can
      never stop (and test a checkpoint) before it reaches compress.amount.
    """

    def __init__(self, amount: float, start_epoch: int = 1, end_epoch: int | None = None):
        # No lottery-ticket rewind: the survivors keep their trained values.
        super().__init__("l1_unstructured", amount=self.step_amount, use_lottery_ticket_hypothesis=False)
        self.target, self.start_epoch, self.end_epoch = amount, start_epoch, end_epoch
        self.pruned_epoch = -1  # the last epoch whose pruning step has run
        self._masks_to_restore: dict[str, torch.Tensor] = {}

    @property
    def state_key(self) -> str:
        return "GradualPruning"

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

    # --- resuming -----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        masks = {}
        for name, module in self._named_pruned(self._module):
            masks[name] = module.weight_mask.detach().to("cpu", torch.bool)
        return {"pruned_epoch": self.pruned_epoch, "masks": masks}

    def load_state_dict(self, state_dict: dict) -> None:
        self.pruned_epoch = int(state_dict.get("pruned_epoch", -1))
        self._masks_to_restore = dict(state_dict.get("masks", {}))

    def on_fit_start(self, trainer, pl_module) -> None:
        self._module = pl_module

    def on_train_start(self, trainer, pl_module) -> None:
        """A resumed run: the checkpoint's weights are the pruned ones made permanent; put the
        masks back (on the model and its EMA) so the zeros stay zeros."""
        if not self._masks_to_restore:
            return
        modules = dict(pl_module.named_modules())
        for name, mask in self._masks_to_restore.items():
            mask = mask.to(modules[name].weight.device, modules[name].weight.dtype)
            self._mask(modules[name], "weight", mask)
            self._mirror_on_average(trainer, name, mask)
        self._masks_to_restore = {}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # Every model state in the checkpoint permanent (weights x masks, no _orig/_mask names),
        # the EMA's included, so any model loads it; the masks travel in this callback's state.
        for key in ("state_dict", "current_model_state"):
            if key in checkpoint:
                checkpoint[key] = permanent(checkpoint[key])

    # --- pruning ------------------------------------------------------------------------------

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        if epoch <= self.pruned_epoch:  # resumed within or after an epoch whose step already ran
            return
        self._run_pruning(epoch)
        for name, module in self._named_pruned(pl_module):
            self._mirror_on_average(trainer, name, module.weight_mask)
        self.pruned_epoch = epoch
        if epoch == self.last:
            forget_best(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Pruning happens at epoch starts, so each epoch's validation and checkpoint see it."""

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.current_epoch >= self.last:
            return
        for stopper in trainer.early_stopping_callbacks:  # they ran first: reset what they counted
            stopper.wait_count = 0
            stopper.best_score = torch.tensor(torch.inf if stopper.monitor_op == torch.lt else -torch.inf)

    def apply_pruning(self, amount) -> None:
        # torch's global pruning .view()s every weight: channels_last convolution weights are made
        # contiguous for it, then put back in channels_last (weights and masks), as channels_last=true asks.
        moved = [(m, n) for m, n in self._parameters_to_prune if _channels_last(_raw_weight(m, n))]
        for module, name in moved:
            _raw_weight(module, name).data = _raw_weight(module, name).data.contiguous()
        super().apply_pruning(amount)
        for module, name in moved:
            weight = _raw_weight(module, name)
            weight.data = weight.data.contiguous(memory_format=torch.channels_last)
            mask = getattr(module, name + "_mask")
            module._buffers[name + "_mask"] = mask.contiguous(memory_format=torch.channels_last)

    def _mask(self, module: nn.Module, name: str, mask: torch.Tensor) -> None:
        torch.nn.utils.prune.custom_from_mask(module, name, mask)

    def _mirror_on_average(self, trainer, name: str, mask: torch.Tensor) -> None:
        """The same mask on the EMA's copy of the module (regularizer=ema), if there is one."""
        for averaging in (c for c in trainer.callbacks if isinstance(c, WeightAveraging)):
            if averaging._average_model is not None:
                self._mask(dict(averaging._average_model.module.named_modules())[name], "weight", mask.detach().clone())

    @staticmethod
    def _named_pruned(pl_module) -> list[tuple[str, nn.Module]]:
        if pl_module is None:
            return []
        return [(name, m) for name, m in pl_module.named_modules() if hasattr(m, "weight_mask")]

    _module = None


def _raw_weight(module: nn.Module, name: str) -> torch.Tensor:
    """The trained tensor: `<name>_orig` once torch's pruning has reparametrised the module."""
    return getattr(module, name + "_orig") if hasattr(module, name + "_orig") else getattr(module, name)


def _channels_last(tensor: torch.Tensor) -> bool:
    return tensor.dim() == 4 and not tensor.is_contiguous() and tensor.is_contiguous(memory_format=torch.channels_last)


def permanent(state: dict) -> dict:
    """A state dict with every pruned tensor made permanent: `x_orig` x `x_mask` saved as `x`."""
    out = {}
    for key, value in state.items():
        if key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state:
            continue
        if key.endswith("_orig") and key[: -len("_orig")] + "_mask" in state:
            base = key[: -len("_orig")]
            out[base] = (value * state[base + "_mask"].to(value.dtype)).cpu()
        else:
            out[key] = value
    return out


def forget_best(trainer) -> None:
    """Best-checkpoint tracking starts afresh: a denser earlier epoch cannot stay "best"."""
    for checkpoint in trainer.checkpoint_callbacks:
        if checkpoint.monitor is None:
            continue
        checkpoint.best_k_models, checkpoint.best_model_path, checkpoint.best_model_score = {}, "", None
        checkpoint.kth_best_model_path = ""
        checkpoint.kth_value = torch.tensor(torch.inf if checkpoint.mode == "min" else -torch.inf)
