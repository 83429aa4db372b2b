"""One line for an OSError raised while a run (or sweep) directory is created or written: the
path, why it cannot be written, and the fix."""

from __future__ import annotations

import errno
import os
import traceback

# Code that creates or writes the run directory (and the sweep directory) around a job: Hydra's
# run_job/_save_config, its launchers, and bigmodel's run records.
RUN_DIR_WRITERS = (
    "hydra/core/utils.py",
    "hydra/_internal/core_plugins/",
    "hydra_plugins/",
    "bigmodel_cli/runs/records.py",
)
RUN_DIR_FIX = (
    "fix: run from a directory you can write to, or pick one with hydra.run.dir=<writable dir> "
    "(hydra.sweep.dir=<writable dir> with --multirun)"
)


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
