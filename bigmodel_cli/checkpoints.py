"""Saving and loading checkpoints safely.

Loading: `weights_only=True` always (unless the user passes --trust-checkpoint), and one clear line
for every way a checkpoint path can be wrong (missing, not a checkpoint, truncated, unsafe, not ours).
Saving: atomically (temp file in the same directory, fsync, rename), so a kill mid-write never
leaves a truncated last.ckpt; resuming picks the newest checkpoint that reads, and says so when it
has to skip a broken one.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from bigmodel_cli.errors import UserError

CHECKPOINT_HINT = "a .ckpt file from a run's checkpoints/ folder, e.g. outputs/train/<run>/checkpoints/best.ckpt"
# Set by the CLI's --trust-checkpoint flag (an environment variable, so DDP children inherit it).
TRUST_ENV = "BIGMODEL_TRUST_CHECKPOINT"


class CorruptCheckpoint(UserError):
    """The file is not a readable checkpoint (truncated, corrupt, or something else)."""


class UnsafeCheckpoint(UserError):
    """The file needs unsafe unpickling (arbitrary code) to load."""


def trusted() -> bool:
    return os.environ.get(TRUST_ENV) == "1"


def read_checkpoint(path: str | Path, map_location: Any = "cpu", trust: bool | None = None) -> Any:
    """torch.load with weights_only=True (unless trusted), every failure turned into one clear line."""
    import torch

    path = Path(path)
    trust = trusted() if trust is None else trust
    if not path.is_file():
        hint = f" (it is a directory; try {path}/checkpoints/best.ckpt)" if path.is_dir() else ""
        raise UserError(f"ckpt_path={path} does not exist{hint}; fix: give {CHECKPOINT_HINT}")
    try:
        return torch.load(path, map_location=map_location, weights_only=not trust)
    except pickle.UnpicklingError as exc:
        culprit = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if culprit is None:
            raise CorruptCheckpoint(f"ckpt_path={path} is not a readable checkpoint (corrupt or not a "
                                    f"checkpoint); fix: give {CHECKPOINT_HINT}") from None
        raise UnsafeCheckpoint(
            f"ckpt_path={path} holds objects ({culprit.group(1)}) that need unsafe unpickling, which can run "
            f"arbitrary code; refused. Fix: only load checkpoints written by bigmodel, re-save the weights as a "
            f"plain state dict, or, if you wrote this file yourself and trust it, pass --trust-checkpoint") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptCheckpoint(f"ckpt_path={path} is not a readable checkpoint (truncated or corrupt: "
                                f"{str(exc).splitlines()[0][:120]}); fix: give {CHECKPOINT_HINT}") from None


def load_checkpoint(path: str | Path, trust: bool | None = None) -> dict[str, Any]:
    """The checkpoint dict, loaded with weights_only=True onto the CPU."""
    checkpoint = read_checkpoint(path, "cpu", trust)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"ckpt_path={path} is not a Lightning checkpoint (no state_dict); fix: give {CHECKPOINT_HINT}")
    if "config" not in checkpoint.get("hyper_parameters", {}):
        raise UserError(f"ckpt_path={path} was not written by bigmodel (no run config in its hyper-parameters); "
                        f"fix: give {CHECKPOINT_HINT}")
    return checkpoint


def saved_config(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The resolved run config a checkpoint was trained with."""
    return checkpoint["hyper_parameters"]["config"]


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temp file in the same directory, fsync it, rename it over `path`, fsync the
    directory: readers see the old file or the new one, never a partial one."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_checkpoint_io():
    """A Lightning CheckpointIO plugin that saves atomically and loads with weights_only=True."""
    from bigmodel_cli.checkpoint_io import AtomicCheckpointIO

    return AtomicCheckpointIO()


def newest_good_checkpoint(directory: str | Path) -> Path | None:
    """The readable checkpoint in `directory` with the most training steps (last.ckpt on a tie);
    unreadable ones are skipped with a warning, so a broken last.ckpt falls back to the previous
    good one. None when there is none."""
    found: list[tuple[int, int, int, Path]] = []
    for path in sorted(Path(directory).glob("*.ckpt")):
        if path.name.startswith("."):
            continue  # a temp file of an interrupted atomic save
        try:
            checkpoint = read_checkpoint(path)
        except CorruptCheckpoint as exc:
            print(f"warning: skipping unreadable checkpoint {path} ({str(exc).split('(')[1].split(';')[0]}; "
                  f"falling back to the previous good checkpoint")
            continue
        step = int(checkpoint.get("global_step", 0)) if isinstance(checkpoint, dict) else 0
        epoch = int(checkpoint.get("epoch", 0)) if isinstance(checkpoint, dict) else 0
        found.append((step, epoch, path.name == "last.ckpt", path))
    return max(found)[3] if found else None
