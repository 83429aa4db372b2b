"""The one error type for user mistakes, and how the CLI turns errors into one line.

A `UserError` message names the bad value, the valid choices and the fix. The CLI prints it
in one red line with no traceback; `--verbose` or HYDRA_FULL_ERROR=1 shows the traceback.
"""

from __future__ import annotations

import errno
import os
import re
import traceback


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
    in_list = re.search(r"Could not load '([^']+)/([^'/]+)'", text)  # an unknown option inside [a,b]
    if in_list:
        from bigmodel_cli.conf_tree import groups

        group, value = in_list.groups()
        options = groups(include_plumbing=True).get(group)
        if options:
            return (f"unknown option {value} in {group}=[...]; valid choices: {choices_text(options)} "
                    f"(fix: list options of the group, e.g. {group}=[{','.join(options[:2])}])")
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


# Code that creates or writes the run directory (and the sweep directory) around a job: Hydra's
# run_job/_save_config, its launchers, and bigmodel's run records.
RUN_DIR_WRITERS = ("hydra/core/utils.py", "hydra/_internal/core_plugins/", "hydra_plugins/", "bigmodel_cli/runs.py")
RUN_DIR_FIX = ("fix: run from a directory you can write to, or pick one with hydra.run.dir=<writable dir> "
               "(hydra.sweep.dir=<writable dir> with --multirun)")


def blocker(path: str, exc: OSError) -> str:
    """Why path cannot be made: its nearest existing ancestor is a file, is read-only, or takes no
    new directories (/proc, a missing mount)."""
    here = os.path.abspath(path)
    while not os.path.lexists(here) and os.path.dirname(here) != here:
        here = os.path.dirname(here)
    shown = here if os.path.isabs(path) else os.path.relpath(here)
    if not os.path.isdir(here):
        return f"{shown} is an existing file, not a directory"
    if not os.access(here, os.W_OK | os.X_OK) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{shown} is not writable"
    if exc.errno == errno.ENOENT:
        return f"{shown} does not take new directories"
    return ""


def run_dir_message_to_line(exc: BaseException) -> str | None:
    """One line for an OSError raised while the run (or sweep) directory is created or written,
    naming the path and the fix; None for any other error."""
    if not isinstance(exc, OSError) or not exc.filename:
        return None
    intended = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        if any(writer in frame.f_code.co_filename.replace(os.sep, "/") for writer in RUN_DIR_WRITERS):
            # Hydra's run_job / launcher name the directory they were making (best effort).
            found = frame.f_locals.get("output_dir") or frame.f_locals.get("sweep_dir")
            intended = str(found) if found else intended or ""
    if intended is None:
        return None
    path = os.fsdecode(exc.filename)
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    why = blocker(path, exc)
    where = f"{intended}: {path}" if intended and os.path.abspath(intended) != os.path.abspath(path) else path
    return f"cannot create or write the run directory {where}: {reason}{f' ({why})' if why else ''}; {RUN_DIR_FIX}"
