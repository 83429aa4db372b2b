"""The one error type for user mistakes, and how the CLI turns errors into one line.

A `UserError` message names the bad value, the valid choices and the fix. The CLI prints it
in one red line with no traceback; `--verbose` or HYDRA_FULL_ERROR=1 shows the traceback.
"""

from __future__ import annotations

import re


class UserError(Exception):
    """A mistake in what the user asked for: bad option, bad value, missing file, mismatch."""


def choices_text(options) -> str:
    return ", ".join(str(o) for o in options)


def hydra_message_to_line(exc: BaseException) -> str | None:
    """Rewrite Hydra's composition errors (multi-line, with hints) as one actionable line.

    Returns None when the exception is not a Hydra composition/override error.
    """
    try:
        from hydra.errors import HydraException, MissingConfigException
    except ImportError:  # pragma: no cover - hydra is a hard dependency
        return None
    if not isinstance(exc, HydraException):
        return None
    text = str(exc).strip()
    if isinstance(exc, MissingConfigException):
        missing = re.search(r"Could not find '([^']+)'", text)
        options = re.findall(r"^\t(\S+)$", text, flags=re.MULTILINE)
        if missing and options:
            group, _, value = missing.group(1).rpartition("/")
            return (f"unknown option {group}={value}; valid choices: {choices_text(options)} "
                    f"(fix: pick one, e.g. {group}={options[0]}; `bigmodel --help` lists every group)")
    unknown_key = re.search(r"Could not override '([^']+)'", text)
    if unknown_key:
        key = unknown_key.group(1)
        return (f"unknown config key '{key}'; check the spelling with `bigmodel train --cfg job`, "
                f"or add a new key explicitly with +{key}=...")
    unknown_delete = re.search(r"Could not delete from config\. '([^']+)'", text)
    if unknown_delete:
        return f"cannot delete '{unknown_delete.group(1)}': no such key in the config (see `bigmodel train --cfg job`)"
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"{first} (run with --verbose for the full trace)"
