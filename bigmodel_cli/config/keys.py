"""The dotted config keys the catalogue defines, read from the YAML files alone (no Hydra, no
torch): what `optimizer.<TAB>` completes to, and where "did you mean ..." finds its suggestion."""

from __future__ import annotations

import difflib
import re
from functools import cache

import yaml

from bigmodel_cli.config.catalogue import conf_dir, config_dirs, groups, option_path, option_yaml

PACKAGE_LINE = re.compile(r"^# @package (\S+)", re.MULTILINE)


def package_of(group: str, option: str) -> str:
    """Where an option's keys land: its `# @package` line, else the group's own node."""
    found = PACKAGE_LINE.search(option_path(group, option).read_text())
    return found.group(1) if found else group.replace("/", ".")


def config_keys(config_name: str = "train") -> tuple[str, ...]:
    """Every key a user can override in this primary config: its own keys, each group's name and
    the keys of every option of each group (the user's config dirs' options too)."""
    return _config_keys(config_name, config_dirs())


@cache
def _config_keys(config_name: str, dirs: tuple) -> tuple[str, ...]:  # dirs: the cache's key
    keys = set(primary_keys(config_name))
    for group in groups(include_plumbing=True):
        if group.split("/")[0] != "hydra":
            keys.update(group_keys(group))
    return tuple(sorted(keys))


def primary_keys(config_name: str = "train") -> list[str]:
    primary = yaml.safe_load((conf_dir() / f"{config_name}.yaml").read_text()) or {}
    return flatten({k: v for k, v in primary.items() if k != "defaults"})


def group_keys(group: str) -> tuple[str, ...]:
    """The group's name and the keys its options set, under the group's package (`_global_`
    recipes only set keys that exist elsewhere). Private keys (`_target_`) are left out."""
    return _group_keys(group, config_dirs())


@cache
def _group_keys(group: str, dirs: tuple) -> tuple[str, ...]:  # dirs: the cache's key
    keys = {group.replace("/", ".")}
    for option in groups(include_plumbing=True).get(group, []):
        package = package_of(group, option)
        if package != "_global_":
            keys.update(flatten(option_yaml(group, option), package.removeprefix("_global_.")))
        else:  # a global option's own node (hparams_search=optuna sets hparams_search.*)
            node = option_yaml(group, option).get(group.replace("/", "."))
            if isinstance(node, dict):
                keys.update(flatten(node, group.replace("/", ".")))
    return tuple(sorted(keys))


def flatten(node: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in node.items():
        if not isinstance(key, str) or key.startswith("_"):
            continue
        path = f"{prefix}.{key}" if prefix else key
        out.append(path)
        if isinstance(value, dict):
            out.extend(flatten(value, path))
    return out


def closest(word: str, candidates) -> str | None:
    """The candidate a typo most likely meant (`tranformer` -> `transformer`), or None."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def closest_key(key: str, config_name: str = "train") -> str | None:
    """The known key `key` most likely meant: among keys of the same depth (`optimizer.lrr` ->
    `optimizer.lr`)."""
    depth = key.count(".")
    # Never the key itself: it is known to some option of its group but not to the one chosen.
    return closest(key, (k for k in config_keys(config_name) if k.count(".") == depth and k != key))
