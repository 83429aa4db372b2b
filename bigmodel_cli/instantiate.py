"""Instantiate `_target_`s from configs, but only callables from an allowlist.

A config may come from someone else (a shared run directory, a checkpoint's saved config), and
`_target_: os.system` would run anything. Every `_target_` in a node is checked before any is
instantiated; users extend the list with `allow_targets=[my_package.]`.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from bigmodel_cli.errors import UserError

ALLOWED_PREFIXES = (
    "bigmodel_cli.",
    "torch.nn.",
    "torch.optim.",
    "torchvision.transforms.",
    "torchvision.models.",
    "torchmetrics.",
    "pytorch_lightning.Trainer",
    "pytorch_lightning.callbacks.",
    "pytorch_lightning.loggers.",
    "pytorch_lightning.profilers.",
    "pytorch_lightning.strategies.",
    "pytorch_lightning.plugins.",
    "lightning.pytorch.callbacks.",
    "lightning.pytorch.loggers.",
)


def find_targets(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(config path, target) for every `_target_` below node."""
    found = []
    if isinstance(node, (dict, DictConfig)):
        items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else node.items()
        for key, value in items:
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_" and isinstance(value, str):
                found.append((path or "<root>", value))
            else:
                found += find_targets(value, where)
    elif isinstance(node, (list, tuple, ListConfig)):
        for i, value in enumerate(node):
            found += find_targets(value, f"{path}[{i}]")
    return found


def is_allowed(target: str, extra_prefixes: tuple[str, ...] = ()) -> bool:
    return any(target == p.rstrip(".") or target.startswith(p) for p in ALLOWED_PREFIXES + tuple(extra_prefixes))


def check_targets(node: Any, extra_prefixes=()) -> None:
    """Raise one UserError naming every `_target_` outside the allowlist."""
    extra = tuple(extra_prefixes or ())
    refused = [(where, target) for where, target in find_targets(node) if not is_allowed(target, extra)]
    if refused:
        listed = "; ".join(f"{where}._target_={target}" for where, target in refused)
        raise UserError(f"refusing to instantiate {listed}: not in the allowed prefixes "
                        f"({', '.join(ALLOWED_PREFIXES + extra)}); fix: if you trust it, add its "
                        f"module with allow_targets=[<prefix>]")


def instantiate(node: Any, extra_prefixes=(), **kwargs) -> Any:
    check_targets(node, extra_prefixes)
    from hydra.utils import instantiate as hydra_instantiate

    if isinstance(node, dict):
        node = OmegaConf.create(node)
    return hydra_instantiate(node, **kwargs)
