"""The regularizer group, read in this one place.

conf/regularizer options (composable: `regularizer=[l2,dropout,ema]`) may set only the keys of
`Regularization`. Who acts on each:
- l1, l2 (+ penalize_norm_bias), label_smoothing, weight_decay: every task module, through
  BackboneModule (lightning_modules/base.py), with the methods below;
- dropout, stochastic_depth: the backbone, whose conf/model YAML takes them as
  `${oc.select:regularizer.<key>,<default>}` (an explicit model.<key>=... wins); a model without
  the key gets a note here instead of silently ignoring it;
- callbacks (early_stopping, ema): Lightning callbacks, added to the Trainer by training/pieces.build_trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bigmodel_cli.config.catalogue import groups, option_yaml
from bigmodel_cli.config.contracts import keys_group_settings

# Keys handed to the backbone through its YAML.
MODEL_KEYS = ("dropout", "stochastic_depth")


@dataclass(frozen=True)
class Regularization:
    l1: float = 0.0
    l2: float = 0.0
    penalize_norm_bias: bool = False  # L1/L2 also on norms' scales and biases
    label_smoothing: float = 0.0
    weight_decay: float = 0.0  # decoupled: w <- w - lr * weight_decay * w at every optimizer step
    dropout: float | None = None
    stochastic_depth: float = 0.0
    callbacks: Any = field(default_factory=dict)  # name -> Lightning callback node

    @classmethod
    def from_config(cls, config) -> Regularization:
        """From a run config (a plain dict or a DictConfig); an unknown key is one clear line."""
        return cls(**keys_group_settings(config, "regularizer", cls))

    def notes(self, model_config) -> list[str]:
        """What the backbone will not honour: a model key set here that the model does not take."""
        model = str(model_config.get("_target_", "?")).rsplit(".", 1)[-1]
        return [
            f"note: model {model} has no {key} setting; regularizer.{key} is ignored (read by "
            f"{', '.join(m for m in groups()['model'] if key in option_yaml('model', m))})"
            for key in MODEL_KEYS
            if getattr(self, key) and key not in model_config
        ]

    def criterion(self) -> nn.Module:
        # Targets may be class indices or probabilities (mixup/cutmix): CrossEntropyLoss takes both.
        return nn.CrossEntropyLoss(label_smoothing=float(self.label_smoothing))

    def penalties(self, weights: list[nn.Parameter]) -> dict[str, torch.Tensor]:
        """The explicit L1/L2 terms on these weights, by name (each is logged on its own)."""
        terms = {}
        if self.l1:
            terms["l1_penalty"] = float(self.l1) * sum(w.abs().sum() for w in weights)
        if self.l2:
            terms["l2_penalty"] = float(self.l2) * sum(w.pow(2).sum() for w in weights)
        return terms

    def decay(self, optimizer, decayed: list[nn.Parameter]) -> None:
        """Decoupled weight decay of the decayed weights, at the lr of each one's param group."""
        if not self.weight_decay:
            return
        chosen = {id(p) for p in decayed}
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if id(p) in chosen:
                        p.mul_(1.0 - group["lr"] * float(self.weight_decay))
