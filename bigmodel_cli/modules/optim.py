"""Optimizer and scheduler from the optimizer/scheduler config groups (plain dicts)."""

from __future__ import annotations

from typing import Any

from torch import nn

from bigmodel_cli.instantiate import instantiate

# Keys of a scheduler option that tell Lightning how to step it; the rest go to the class.
SCHEDULER_KEYS = ("interval", "frequency", "monitor")


def build_optimizer(params, optimizer_cfg: dict[str, Any], allow=()):
    return instantiate(optimizer_cfg, allow)(params)


def build_scheduler(optimizer, scheduler_cfg: dict[str, Any] | None, allow=()) -> dict | None:
    """Lightning's lr_scheduler dict, or None for scheduler=none."""
    if not scheduler_cfg or not scheduler_cfg.get("_target_"):
        return None
    settings = {k: scheduler_cfg[k] for k in SCHEDULER_KEYS if k in scheduler_cfg}
    kwargs = {k: v for k, v in scheduler_cfg.items() if k not in SCHEDULER_KEYS}
    return {"scheduler": instantiate(kwargs, allow)(optimizer), **settings}


def decayed_weights(module: nn.Module):
    """Parameters that penalties apply to: weight matrices and kernels, not norms or biases."""
    return [p for p in module.parameters() if p.requires_grad and p.ndim > 1]
