"""`bigmodel <subcommand> --help group=option ...`: for each option, its YAML file, what it sets, what
it builds (`_target_`) and the code that reads it (the group's contract), each with the file and
line to open. Found from the YAML and the source files, importing none of them (no torch)."""

from __future__ import annotations

import re
from pathlib import Path

from bigmodel_cli.config.catalogue import conf_dir, groups, option_path, option_yaml
from bigmodel_cli.config.contracts import CONTRACTS
from bigmodel_cli.errors import UserError, choices_text

# Where bigmodel_cli and hydra_plugins sit (side by side in a checkout and in site-packages).
SOURCE_ROOT = Path(__file__).resolve().parents[2]
OWN_PACKAGES = ("bigmodel_cli", "hydra_plugins")


def wanted_options(arguments: list[str]) -> list[tuple[str, str]]:
    """The `group=option` arguments of a --help command line (others are left to Hydra's help)."""
    known = groups()
    picked = []
    for argument in arguments:
        group, equals, option = argument.partition("=")
        if not equals or "." in group or group.startswith("-"):
            continue
        if group not in known:
            raise UserError(f"{group} is not a config group; valid choices: {choices_text(known)}")
        if option not in known[group]:
            raise UserError(
                f"{group}={option} is not an option; valid choices: {choices_text(known[group])} "
                f"(fix: {group}={known[group][0]})"
            )
        picked.append((group, option))
    return picked


def where(reference: str) -> str:
    """`pkg.module:Name` or `pkg.module.Name`, with `file:line` when it is bigmodel's own code."""
    module, _, name = reference.partition(":") if ":" in reference else reference.rpartition(".")
    if not module.startswith(OWN_PACKAGES):
        return reference
    base = SOURCE_ROOT / module.replace(".", "/")
    path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    if not path.is_file():
        return f"{reference} (not found: {path})"
    pattern = re.compile(rf"^(class|def) {re.escape(name)}\b|^{re.escape(name)} = ")
    lines = path.read_text().splitlines()
    line = next((n for n, text in enumerate(lines, 1) if pattern.match(text)), 1)
    return f"{reference}  {path.relative_to(SOURCE_ROOT)}:{line}"


def targets(node, key: str = "") -> list[tuple[str, str]]:
    """Every (key, _target_) in an option's YAML, nested ones included."""
    if not isinstance(node, dict):
        return []
    found = [(key or ".", str(node["_target_"]))] if "_target_" in node else []
    for name, value in node.items():
        found += targets(value, f"{key}.{name}" if key else str(name))
    return found


def settings_text(node: dict) -> str:
    """The option's plain values (not its nested nodes), as key=value."""
    values = [f"{k}={v}" for k, v in node.items() if not isinstance(v, dict) and k not in ("_target_", "defaults")]
    return ", ".join(values) or "-"


def print_readers(options: list[tuple[str, str]]) -> None:
    for group, option in options:
        node = option_yaml(group, option)
        contract = CONTRACTS.get(group)
        path = option_path(group, option)  # conf/<group>/<option>.yaml, or in the user's config dir
        shown = path.relative_to(conf_dir().parent) if path.is_relative_to(conf_dir()) else path
        print(f"{group}={option}: {shown}")
        print(f"  sets     {settings_text(node)}")
        for key, target in targets(node):
            print(f"  builds   {where(target)}" + ("" if key == "." else f"  ({key})"))
        for reader in contract.read_by if contract else ():
            print(f"  read by  {where(reader)}")
