"""Hydra's composition and override errors (multi-line, with hints) as one actionable line that
names the bad value and the valid choices from the catalogue."""

from __future__ import annotations

import re

from bigmodel_cli.config.catalogue import groups
from bigmodel_cli.config.contracts import owned_trainer_key
from bigmodel_cli.config.keys import closest, closest_key
from bigmodel_cli.errors import choices_text


def hydra_message_to_line(exc: BaseException) -> str | None:
    """The line for a Hydra composition/override error; None for any other exception."""
    from hydra.errors import HydraException, MissingConfigException

    if not isinstance(exc, HydraException):
        return None
    text = str(exc).strip()
    if isinstance(exc, MissingConfigException):
        missing = re.search(r"Could not find '([^']+)'", text)
        options = re.findall(r"^\t(\S+)$", text, flags=re.MULTILINE)
        if missing and options:
            group, _, value = missing.group(1).rpartition("/")
            return (
                f"unknown option {group}={value}; {did_you_mean(group + '=', closest(value, options))}"
                f"valid choices: {choices_text(options)} "
                f"(fix: pick one, e.g. {group}={closest(value, options) or options[0]}; "
                f"`bigmodel --help` lists every group)"
            )
    in_list = re.search(r"Could not load '([^']+)/([^'/]+)'", text)  # an unknown option inside [a,b]
    if in_list:
        group, value = in_list.groups()
        options = groups(include_plumbing=True).get(group)
        if options:
            return (
                f"unknown option {value} in {group}=[...]; {did_you_mean('', closest(value, options))}valid choices: {choices_text(options)} "
                f"(fix: list options of the group, e.g. {group}=[{','.join(options[:2])}])"
            )
    unknown_key = re.search(r"Could not override '([^']+)'", text)
    if unknown_key:
        key = unknown_key.group(1)
        if owned := owned_trainer_key(key):
            return owned
        return (
            f"unknown config key '{key}'; {did_you_mean('', closest_key(key))}check the spelling with `bigmodel train --cfg job`, "
            f"or add a new key explicitly with +{key}=..."
        )
    unknown_delete = re.search(r"Could not delete from config\. '([^']+)'", text)
    if unknown_delete:
        return f"cannot delete '{unknown_delete.group(1)}': no such key in the config (see `bigmodel train --cfg job`)"
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"{first} (run with --verbose for the full trace)"


def did_you_mean(prefix: str, suggestion: str | None) -> str:
    return f"did you mean {prefix}{suggestion}? " if suggestion else ""
