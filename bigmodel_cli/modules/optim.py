"""Optimizer and scheduler from the optimizer/scheduler config groups (plain dicts).

Reserved keys (popped before the class is instantiated):
- optimizer: `no_decay_norm_bias` puts norms and biases (parameters with ndim <= 1) in a group
  without weight decay; `full_batch` makes one optimizer step per epoch (read by the module).
- scheduler: `interval`, `frequency`, `monitor` tell Lightning how to step it.
A scheduler argument named in RUN_LENGTH_KEYS left null gets the run's length counted in the
scheduler's interval (optimizer steps or epochs), and a null `max_lr` gets the optimizer's lr.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from torch import nn

from bigmodel_cli.errors import UserError
from bigmodel_cli.instantiate import instantiate

OPTIMIZER_KEYS = ("no_decay_norm_bias", "full_batch")
SCHEDULER_KEYS = ("interval", "frequency", "monitor")
RUN_LENGTH_KEYS = ("total_steps", "T_max", "total_iters")
INTERVALS = ("step", "epoch")


def is_decayed(param: nn.Parameter) -> bool:
    """Weight matrices and kernels decay; norms' scales and biases (ndim <= 1) do not."""
    return param.ndim > 1


def decayed_weights(module: nn.Module):
    """Parameters that penalties apply to: weight matrices and kernels, not norms or biases."""
    return [p for p in module.parameters() if p.requires_grad and is_decayed(p)]


def parameter_groups(params, no_decay_norm_bias: bool) -> list:
    """The parameters, split into (decayed, weight_decay=0) groups when norms/biases are exempt."""
    params = [p for p in params if p.requires_grad]
    if not no_decay_norm_bias:
        return params
    decay = [p for p in params if is_decayed(p)]
    exempt = [p for p in params if not is_decayed(p)]
    return [g for g in ({"params": decay}, {"params": exempt, "weight_decay": 0.0}) if g["params"]]


def build_optimizer(params_or_module, optimizer_cfg: dict[str, Any], allow=()):
    """The optimizer over a module's (or an iterable's) parameters, with the reserved keys applied."""
    params = params_or_module.parameters() if isinstance(params_or_module, nn.Module) else params_or_module
    kwargs = {k: v for k, v in optimizer_cfg.items() if k not in OPTIMIZER_KEYS}
    if not isinstance(kwargs.get("lr", 0.0), (int, float)):
        raise UserError(f"optimizer.lr={kwargs['lr']!r} is not a number here; fix: give a number, or use "
                        f"`bigmodel lr-find` / `bigmodel train optimizer.lr=auto` to search for one")
    groups = parameter_groups(params, bool(optimizer_cfg.get("no_decay_norm_bias", False)))
    return instantiate(kwargs, allow)(groups)


def build_scheduler(optimizer, scheduler_cfg: dict[str, Any] | None, allow=(),
                    run_length: Callable[[str], int] | None = None) -> dict | None:
    """Lightning's lr_scheduler dict, or None for scheduler=none.

    run_length(interval) is the number of steps or epochs in the run, for RUN_LENGTH_KEYS left null.
    """
    if not scheduler_cfg or not scheduler_cfg.get("_target_"):
        return None
    settings = {k: scheduler_cfg[k] for k in SCHEDULER_KEYS if k in scheduler_cfg}
    interval = settings.get("interval", "epoch")
    if interval not in INTERVALS:
        raise UserError(f"scheduler.interval={interval!r} is not valid; valid choices: {', '.join(INTERVALS)} "
                        f"(fix: scheduler.interval=step or scheduler.interval=epoch)")
    kwargs = {k: v for k, v in scheduler_cfg.items() if k not in SCHEDULER_KEYS}
    filled = {}  # passed at call time, so lists stay plain lists
    for key in RUN_LENGTH_KEYS:
        if key in kwargs and kwargs[key] is None:
            if run_length is None:
                raise UserError(f"scheduler.{key} is null (the whole run) but the run length is unknown here; "
                                f"fix: scheduler.{key}=<number of {interval}s>")
            filled[key] = run_length(interval)
    if "max_lr" in kwargs and kwargs["max_lr"] is None:
        filled["max_lr"] = [group["lr"] for group in optimizer.param_groups]
    kwargs = {k: v for k, v in kwargs.items() if k not in filled}
    return {"scheduler": instantiate(kwargs, allow)(optimizer, **filled), **settings}


def warmup_cosine(optimizer, total_steps: int, warmup_steps: int | None = None, warmup_fraction: float = 0.05,
                  min_lr_ratio: float = 0.0):
    """Linear warmup from ~0 to the optimizer's lr, then cosine decay to min_lr_ratio x lr.

    Counted in the scheduler's interval (steps or epochs). warmup_steps, when set, wins over
    warmup_fraction (a fraction of total_steps).
    """
    from torch.optim.lr_scheduler import LambdaLR

    warmup = int(warmup_steps) if warmup_steps is not None else int(round(warmup_fraction * total_steps))
    if warmup < 0 or total_steps < 1:
        raise UserError(f"warmup_cosine needs total_steps >= 1 and warmup >= 0 (got {total_steps}, {warmup}); "
                        f"fix: scheduler.warmup_steps=<a count below the run's length>")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
