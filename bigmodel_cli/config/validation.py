"""Check a composed config before anything is built or loaded.

Types are checked against the same composition without the user's value overrides (the YAML
defaults are the schema), so every numeric or boolean field in every group is covered without
a hand-written schema. Ranges are a short list of rules below. All problems are reported at once.
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatch
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from bigmodel_cli.config.catalogue import check_model_fits_data, data_for
from bigmodel_cli.config.instantiate import check_targets
from bigmodel_cli.config.source import override_key
from bigmodel_cli.errors import UserError

# (key pattern, test, what a valid value is)
RANGE_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("optimizer.lr", lambda v: v > 0, "a positive number, e.g. optimizer.lr=1e-3"),
    ("optimizer.weight_decay", lambda v: v >= 0, "0 or more"),
    ("optimizer.momentum", lambda v: 0 <= v < 1, "in [0, 1), e.g. 0.9"),
    ("*dropout", lambda v: 0 <= v < 1, "a probability in [0, 1), e.g. 0.1"),
    ("regularizer.l1", lambda v: v >= 0, "0 or more"),
    ("regularizer.l2", lambda v: v >= 0, "0 or more"),
    ("regularizer.label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("regularizer.weight_decay", lambda v: v >= 0, "0 or more"),
    ("regularizer.stochastic_depth", lambda v: 0 <= v < 1, "a probability in [0, 1), e.g. 0.1"),
    ("regularizer.callbacks.ema.decay", lambda v: 0 < v < 1, "in (0, 1), e.g. 0.99"),
    ("lr_find.min_lr", lambda v: v > 0, "a positive number, e.g. 1e-6"),
    ("lr_find.num_training", lambda v: v >= 12, "12 or more steps"),
    ("data.val_fraction", lambda v: 0 < v < 1, "strictly between 0 and 1, e.g. 0.1"),
    ("data.test_fraction", lambda v: 0 < v < 1, "strictly between 0 and 1, e.g. 0.2"),
    ("data.batch_size", lambda v: v >= 1, "1 or more"),
    ("data.num_workers", lambda v: v >= 0, "0 or more"),
    ("data.num_classes", lambda v: v >= 2, "2 or more"),
    ("trainer.max_epochs", lambda v: v >= 1 or v == -1, "1 or more (or -1 for no limit)"),
    ("trainer.accumulate_grad_batches", lambda v: v >= 1, "1 or more"),
    ("seed", lambda v: v >= 0, "0 or more (or null for a random seed)"),
]

# (key pattern, words accepted in place of the YAML default's type), e.g. optimizer.lr=auto asks the
# learning-rate finder for the lr.
WORD_VALUES: list[tuple[str, tuple[str, ...]]] = [
    ("optimizer.lr", ("auto",)),
]


def _is_word_value(key: str, value: Any) -> bool:
    return isinstance(value, str) and any(fnmatch(key, pattern) and value in words for pattern, words in WORD_VALUES)


class Unresolvable:
    """A leaf whose interpolation cannot be resolved (`${data.image_size}` on text data)."""

    def __init__(self, error: Exception):
        self.text = str(error).splitlines()[0]


def _leaves(node: Any, prefix: str = ""):
    """(dotted key, value) for every leaf, resolving interpolations (an Unresolvable when one fails)."""
    from omegaconf.errors import InterpolationResolutionError

    if isinstance(node, DictConfig):
        for key in node.keys():
            where = f"{prefix}.{key}" if prefix else str(key)
            if OmegaConf.is_missing(node, key):
                continue
            try:
                value = node[key]
            except InterpolationResolutionError as exc:
                yield where, Unresolvable(exc)
                continue
            yield from _leaves(value, where)
    elif isinstance(node, ListConfig):
        yield prefix, list(node)
    else:
        yield prefix, node


def _type_problem(key: str, value: Any, reference: Any) -> str | None:
    if reference is None or value is None:
        return None
    if isinstance(reference, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(reference, int):
        ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(reference, float):
        ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif isinstance(reference, list):
        ok, want = isinstance(value, list), "a list, e.g. [1,2]"
    else:
        return None
    return None if ok else f"{key}={value!r} should be {want}"


def _range_problem(key: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    for pattern, test, valid in RANGE_RULES:
        if fnmatch(key, pattern) and not test(value):
            return f"{key}={value} is out of range: use {valid}"
    return None


def problems(cfg: DictConfig, reference: DictConfig | None) -> list[str]:
    found = []
    reference_leaves = dict(_leaves(reference)) if reference is not None else {}
    for key, value in _leaves(cfg):
        if key.startswith("hydra.") or _is_word_value(key, value):
            continue
        if isinstance(value, Unresolvable):
            found.append(f"{key} cannot be resolved: {value.text}")
            continue
        problem = _type_problem(key, value, reference_leaves.get(key)) or _range_problem(key, value)
        if problem:
            found.append(problem)
    return found


def reference_config(cfg: DictConfig) -> DictConfig | None:
    """The same primary config and group choices, without the user's value overrides."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if all(override_key(o) in hydra_cfg.runtime.choices for o in hydra_cfg.overrides.task):
        return cfg  # only group choices: composing again (~0.25 s) would give the same config
    choices = [
        f"{group}={choice}"
        for group, choice in hydra_cfg.runtime.choices.items()
        if not group.startswith("hydra") and choice is not None
    ]
    return compose(config_name=hydra_cfg.job.config_name, overrides=choices)


def check_augmentation_fits_data(cfg: DictConfig) -> None:
    """The augmentation group transforms images; on other data it would be silently ignored (or
    fail to resolve `${data.image_size}`), so it is one line instead."""
    augmentation = cfg.get("augmentation")
    modality = cfg.data.get("modality", "image")
    if modality == "image" or not augmentation or not any(node is not None for node in augmentation.values()):
        return
    from hydra.core.hydra_config import HydraConfig

    choice = HydraConfig.get().runtime.choices.get("augmentation") if HydraConfig.initialized() else None
    named = f"augmentation={choice}" if choice else f"augmentation ({', '.join(augmentation)})"
    raise UserError(
        f"{named} transforms images, and this run's data is {modality} data; fix: augmentation=none "
        f"(or image data: {', '.join(data_for('image'))})"
    )


def validate(cfg: DictConfig) -> None:
    """Raise one UserError listing every problem: bad types, out-of-range values, unsafe targets."""
    check_targets(cfg, cfg.get("allow_targets") or ())
    if cfg.get("model") is not None and cfg.get("data") is not None:
        check_model_fits_data(cfg)  # before resolving: a CNN's ${data.image_size} is missing on text
    if cfg.get("data") is not None:
        check_augmentation_fits_data(cfg)
    found = problems(cfg, reference_config(cfg))
    if found:
        raise UserError("invalid config: " + "; ".join(found))
