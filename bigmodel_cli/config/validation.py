"""Check a composed config before anything is built or loaded.

Types are checked against the same composition without the user's value overrides (the YAML
defaults are the schema), so every numeric or boolean field in every group is covered without
a hand-written schema. Ranges are the groups' contracts (config/contracts.py: each contract's
`ranges`, and the primary configs' keys); a key with a range takes only numbers, even where its
YAML default is null. All problems are reported at once.
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from bigmodel_cli.config.catalogue import check_model_fits_data, data_for
from bigmodel_cli.config.contracts import DIRECTORY_KEYS, owned_trainer_key, range_rules
from bigmodel_cli.config.instantiate import check_targets
from bigmodel_cli.config.source import override_key
from bigmodel_cli.errors import UserError

# (key pattern, words accepted in place of the YAML default's type), e.g. optimizer.lr=auto asks the
# learning-rate finder for the lr.
WORD_VALUES: list[tuple[str, tuple[str, ...]]] = [
    ("optimizer.lr", ("auto",)),
]

# Keys whose integer default may also be given as a list of integers: one per stage.
PER_ITEM_KEYS = ("model.convs_per_stage",)


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
        per_item = key in PER_ITEM_KEYS
        items = value if per_item and isinstance(value, list) else [value]
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in items)
        want = "an integer, or a list of them, e.g. [1,2]" if per_item else "an integer"
    elif isinstance(reference, float):
        ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif isinstance(reference, list):
        ok, want = isinstance(value, list), "a list, e.g. [1,2]"
    else:
        return None
    return None if ok else f"{key}={value!r} should be {want}"


def _range_problem(key: str, value: Any) -> str | None:
    if value is None:
        return None
    for pattern, rule in range_rules():
        if not fnmatch(key, pattern):
            continue
        is_number = not isinstance(value, bool) and isinstance(value, (int, float))
        if not is_number and not rule.numbers_only:
            continue
        numbers = value if isinstance(value, list) else [value]  # a list: each entry (cnn channels)
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
            want = "numbers" if isinstance(value, list) else "a number"
            return f"{key}={value!r} should be {want} ({rule.valid})"
        if not all(rule.test(v) for v in numbers):
            return f"{key}={value} is out of range: use {rule.valid}" + (" each" if isinstance(value, list) else "")
    return None


def _path_problem(key: str, value: Any) -> str | None:
    if isinstance(value, str) and any(fnmatch(key, p) for p in DIRECTORY_KEYS) and Path(value).is_file():
        return f"{key}={value} is a file, and a directory is expected there (fix: a directory, or a path that does not exist yet)"
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
        problem = (
            _type_problem(key, value, reference_leaves.get(key))
            or _range_problem(key, value)
            or _path_problem(key, value)
        )
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
    for key in cfg.get("trainer") or {}:  # added with `+trainer.<key>=`: the same line as without the +
        if owned := owned_trainer_key(f"trainer.{key}"):
            raise UserError(owned)
    if cfg.get("model") is not None and cfg.get("data") is not None:
        check_model_fits_data(cfg)  # before resolving: a CNN's ${data.image_size} is missing on text
    if cfg.get("data") is not None:
        check_augmentation_fits_data(cfg)
    found = problems(cfg, reference_config(cfg))
    if found:
        raise UserError("invalid config: " + "; ".join(found))
