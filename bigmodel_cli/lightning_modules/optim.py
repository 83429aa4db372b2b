"""Optimizer and scheduler from the optimizer/scheduler config groups (plain dicts).

Reserved keys (config/contracts.py; popped before the class is instantiated):
- optimizer: `no_decay_norm_bias` puts norm layers' parameters and biases in a group without
  weight decay; `full_batch` makes one optimizer step per epoch (read by the module).
- scheduler: `interval`, `frequency`, `monitor` tell Lightning how to step it.
A scheduler argument named in RUN_LENGTH_KEYS left null gets the run's length counted in the
scheduler's interval (optimizer steps or epochs), and a null `max_lr` gets the optimizer's lr.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
from collections.abc import Callable
from typing import Any

from torch import nn

from bigmodel_cli.config.contracts import OPTIMIZER_RESERVED, SCHEDULER_RESERVED
from bigmodel_cli.config.instantiate import instantiate
from bigmodel_cli.config.keys import closest
from bigmodel_cli.errors import UserError

RUN_LENGTH_KEYS = ("total_steps", "T_max", "total_iters")
INTERVALS = ("step", "epoch")


# Layers whose parameters (scales and shifts) never decay or take L1/L2 penalties.
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.RMSNorm)
# Name segments that wrappers (FSDP, activation checkpointing, torch.compile) insert into parameter names.
WRAPPER_SEGMENTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def decayed_names(module: nn.Module, prefix: str = "") -> set[str]:
    """Names of the parameters weight decay and L1/L2 penalties apply to: weight matrices, kernels
    and embeddings, not norm layers' parameters or biases. Decided from the module types and the
    shapes as built, i.e. before any wrapper: FSDP flattens and shards every parameter to 1-D."""
    names = set()
    for module_name, sub in module.named_modules(prefix=prefix.rstrip(".")):
        if isinstance(sub, NORM_LAYERS):
            continue
        for name, param in sub.named_parameters(recurse=False):
            if name != "bias" and param.ndim > 1:
                names.add(f"{module_name}.{name}" if module_name else name)
    return names


def unwrapped_name(name: str) -> str:
    """A parameter's name as it was before wrapping."""
    for segment in WRAPPER_SEGMENTS:
        name = name.replace(segment, "")
    return name


def decayed_parameters(named_parameters, decayed: set[str]) -> list[nn.Parameter]:
    """The trainable parameters among named_parameters whose (unwrapped) names are in decayed."""
    return [p for name, p in named_parameters if p.requires_grad and unwrapped_name(name) in decayed]


def parameter_groups(named_parameters, decayed: set[str], no_decay_norm_bias: bool) -> list:
    """The trainable parameters, split into (decayed, weight_decay=0) groups when norms/biases are exempt."""
    named = [(name, p) for name, p in named_parameters if p.requires_grad]
    if not no_decay_norm_bias:
        return [p for _, p in named]
    decay = decayed_parameters(named, decayed)
    chosen = {id(p) for p in decay}
    exempt = [p for _, p in named if id(p) not in chosen]
    return [g for g in ({"params": decay}, {"params": exempt, "weight_decay": 0.0}) if g["params"]]


def build_optimizer(
    module: nn.Module,
    optimizer_cfg: dict[str, Any],
    allow=(),
    decayed: set[str] | None = None,
    lr_scales: dict[str, float] | None = None,
):
    """The optimizer over a module's parameters, with the reserved keys applied. `decayed` names the
    parameters that take weight decay (default: decided from the module as it is now); `lr_scales`
    multiplies the lr of the named parameters (finetune=layerwise)."""
    kwargs = {k: v for k, v in optimizer_cfg.items() if k not in OPTIMIZER_RESERVED}
    if not isinstance(kwargs.get("lr", 0.0), (int, float)):
        raise UserError(
            f"optimizer.lr={kwargs['lr']!r} is not a number here; fix: give a number, or use "
            f"`bigmodel lr-find` / `bigmodel train optimizer.lr=auto` to search for one"
        )
    decayed = decayed_names(module) if decayed is None else decayed
    named = list(module.named_parameters())
    groups = parameter_groups(named, decayed, bool(optimizer_cfg.get("no_decay_norm_bias", False)))
    if lr_scales:
        groups = scaled_groups(groups, named, lr_scales, float(kwargs.get("lr", 1e-3)))
    with arguments_it_takes("optimizer", kwargs["_target_"]):
        return instantiate(kwargs, allow)(groups)


def scaled_groups(groups: list, named, lr_scales: dict[str, float], lr: float) -> list[dict]:
    """Each parameter group split by lr multiplier, with its own lr."""
    scale_of = {id(p): lr_scales.get(unwrapped_name(name), 1.0) for name, p in named}
    groups = groups if isinstance(groups[0], dict) else [{"params": groups}]
    out = []
    for group in groups:
        for scale in sorted({scale_of[id(p)] for p in group["params"]}):
            params = [p for p in group["params"] if scale_of[id(p)] == scale]
            out.append({**group, "params": params, "lr": lr * scale})
    return out


def build_scheduler(
    optimizer,
    scheduler_cfg: dict[str, Any] | None,
    allow=(),
    run_length: Callable[[str], int] | None = None,
    steps_end_run: bool = False,
) -> dict | None:
    """Lightning's lr_scheduler dict, or None for scheduler=none.

    run_length(interval) is the number of steps or epochs in the run, for RUN_LENGTH_KEYS left null.
    With `steps_end_run` (trainer.max_steps set) a schedule over the whole run steps per optimizer
    step over the run's steps, whatever its interval: the number of epochs is not what ends the run.
    """
    if not scheduler_cfg or not scheduler_cfg.get("_target_"):
        return None
    settings = {k: scheduler_cfg[k] for k in SCHEDULER_RESERVED if k in scheduler_cfg}
    interval = settings.get("interval", "epoch")
    if interval not in INTERVALS:
        raise UserError(
            f"scheduler.interval={interval!r} is not valid; valid choices: {', '.join(INTERVALS)} "
            f"(fix: scheduler.interval=step or scheduler.interval=epoch)"
        )
    kwargs = {k: v for k, v in scheduler_cfg.items() if k not in SCHEDULER_RESERVED}
    filled = {}  # passed at call time, so lists stay plain lists
    whole_run = [key for key in RUN_LENGTH_KEYS if key in kwargs and kwargs[key] is None]
    if whole_run and steps_end_run:
        interval = settings["interval"] = "step"
    for key in RUN_LENGTH_KEYS:
        if key in kwargs and kwargs[key] is None:
            if run_length is None:
                raise UserError(
                    f"scheduler.{key} is null (the whole run) but the run length is unknown here; "
                    f"fix: scheduler.{key}=<number of {interval}s>"
                )
            filled[key] = run_length(interval)
    if "max_lr" in kwargs and kwargs["max_lr"] is None:
        filled["max_lr"] = [group["lr"] for group in optimizer.param_groups]
    kwargs = {k: v for k, v in kwargs.items() if k not in filled}
    with arguments_it_takes("scheduler", kwargs["_target_"]):
        return {"scheduler": instantiate(kwargs, allow)(optimizer, **filled), **settings}


UNEXPECTED_ARGUMENT = re.compile(r"got an unexpected keyword argument '(\w+)'")


@contextlib.contextmanager
def arguments_it_takes(group: str, target: str):
    """A key added with `+` (`+optimizer.lrr=0.1`) passes the config's typo check and reaches the
    optimizer or scheduler as an argument it does not take: one line with the likely meant one."""
    try:
        yield
    except TypeError as exc:
        found = UNEXPECTED_ARGUMENT.search(str(exc))
        if found is None:
            raise
        from hydra.utils import get_object

        key = found.group(1)
        taken = [
            p for p in inspect.signature(get_object(target)).parameters if p not in ("self", "params", "optimizer")
        ]
        meant = closest(key, taken)
        raise UserError(
            f"{group}.{key}: {target} takes no argument '{key}'"
            + (f"; did you mean {group}.{meant}?" if meant else "")
            + f" valid: {', '.join(taken)} (fix: drop {group}.{key}, or set one of these)"
        ) from None


def warmup_cosine(
    optimizer,
    total_steps: int,
    warmup_steps: int | None = None,
    warmup_fraction: float = 0.05,
    min_lr_ratio: float = 0.0,
):
    """Linear warmup from ~0 to the optimizer's lr, then cosine decay to min_lr_ratio x lr.

    Counted in the scheduler's interval (steps or epochs). warmup_steps, when set, wins over
    warmup_fraction (a fraction of total_steps).
    """
    from torch.optim.lr_scheduler import LambdaLR

    warmup = int(warmup_steps) if warmup_steps is not None else int(round(warmup_fraction * total_steps))
    if warmup < 0 or total_steps < 1:
        raise UserError(
            f"warmup_cosine needs total_steps >= 1 and warmup >= 0 (got {total_steps}, {warmup}); "
            f"fix: scheduler.warmup_steps=<a count below the run's length>"
        )

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
