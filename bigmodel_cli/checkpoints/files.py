"""Saving and loading checkpoints safely.

Loading: `weights_only=True` always (unless the user passes --trust-checkpoint), and one clear line
for every way a checkpoint path can be wrong (missing, not a checkpoint, truncated, unsafe, not ours).
Saving: atomically (temp file in the same directory, fsync, rename), so a kill mid-write never
leaves a truncated last.ckpt; resuming picks the newest checkpoint that reads, and says so when it
has to skip a broken one.
"""

from __future__ import annotations

import contextlib
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

from bigmodel_cli.atomic import atomic_path
from bigmodel_cli.config.renamed import with_current_targets
from bigmodel_cli.errors import UserError
from bigmodel_cli.process_state import trusted

CHECKPOINT_HINT = "a .ckpt file from a run's checkpoints/ folder, e.g. outputs/train/<run>/checkpoints/best.ckpt"


class CorruptCheckpoint(UserError):
    """The file is not a readable checkpoint (truncated, corrupt, or something else)."""

    def __init__(self, message: str, what: str = "truncated or corrupt"):
        super().__init__(message)
        self.what = what  # what the file is, in a few words


class UnsafeCheckpoint(UserError):
    """The file needs unsafe unpickling (arbitrary code) to load."""


def describe_file(path: Path) -> tuple[str, bool]:
    """What a file that did not load as a checkpoint looks like, for the error line; and whether
    torch's own message says more about it (an archive) rather than being noise (text, garbage)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        return f"a file that cannot be read ({exc.strerror or exc})", False
    if not head:
        return "an empty file (0 bytes)", False
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(path):
            return f"a truncated or corrupt zip archive ({size} bytes; a torch checkpoint is a zip)", True
        with contextlib.suppress(zipfile.BadZipFile, OSError), zipfile.ZipFile(path) as archive:
            if not any(name.endswith("data.pkl") for name in archive.namelist()):
                return "a zip archive that is not a torch checkpoint (no data.pkl in it)", False
        return f"a torch zip archive that does not load ({size} bytes)", True
    if head[257:262] == b"ustar":
        return "a tar archive (not a checkpoint, or PyTorch's legacy .tar format, which cannot be loaded safely)", False
    if head.startswith(b"\x80"):
        return "a Python pickle, not a torch checkpoint", False
    if head.startswith((b"\x89HDF", b"\x93NUMPY")):
        return "an HDF5 or NumPy file, not a torch checkpoint", False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c.isspace() for c in text):
        return "a text file, not a torch checkpoint", False
    return f"not a torch checkpoint (unrecognised contents, {size} bytes)", False


def _not_readable(path: Path, exc: BaseException) -> CorruptCheckpoint:
    what, say_more = describe_file(path)
    detail = " ".join(str(exc).split())[:120]
    more = f" ({type(exc).__name__}: {detail})" if say_more and detail else ""
    return CorruptCheckpoint(
        f"ckpt_path={path} is not a readable checkpoint: it is {what}{more}; fix: give {CHECKPOINT_HINT}", what=what
    )


def read_checkpoint(path: str | Path, map_location: Any = "cpu", trust: bool | None = None) -> Any:
    """torch.load with weights_only=True (unless trusted), every failure turned into one clear line."""
    import torch

    path = Path(path)
    trust = trusted() if trust is None else trust
    if path.is_dir():
        best = path / "checkpoints" / "best.ckpt"
        inside = sorted(p.name for p in path.glob("*.ckpt"))
        hint = (
            f"give {best}"
            if best.is_file()
            else f"give one of the checkpoints in it ({', '.join(inside[:5])})"
            if inside
            else f"give {CHECKPOINT_HINT}"
        )
        raise UserError(f"ckpt_path={path} is a directory, not a checkpoint file; fix: {hint}")
    if not path.exists():
        raise UserError(f"ckpt_path={path} does not exist; fix: give {CHECKPOINT_HINT}")
    if not path.is_file():  # a device, FIFO or socket: reading it could block or never end
        raise CorruptCheckpoint(
            f"ckpt_path={path} is not a regular file (a device, pipe or socket); fix: give {CHECKPOINT_HINT}",
            what="not a regular file",
        )
    try:
        with warnings.catch_warnings():  # a plain pickle's protocol is not news to the user
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=not trust)
    except pickle.UnpicklingError as exc:
        culprit = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if culprit is None:
            raise _not_readable(path, exc) from exc
        raise UnsafeCheckpoint(
            f"ckpt_path={path} holds objects ({culprit.group(1)}) that need unsafe unpickling, which can run "
            f"arbitrary code; refused. Fix: only load checkpoints written by bigmodel, re-save the weights as a "
            f"plain state dict, or, if you wrote this file yourself and trust it, pass --trust-checkpoint"
        ) from None
    except MemoryError:
        raise
    except Exception as exc:
        raise _not_readable(path, exc) from exc


def load_checkpoint(path: str | Path, trust: bool | None = None) -> dict[str, Any]:
    """The checkpoint dict, loaded with weights_only=True onto the CPU, checked to be bigmodel's:
    a state dict, and the run config (with a model and data) it was trained with."""
    checkpoint = read_checkpoint(path, "cpu", trust)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        holds = (
            f"a {type(checkpoint).__name__}"
            if not isinstance(checkpoint, dict)
            else "a dict with no state_dict"
            if "state_dict" not in checkpoint
            else f"a state_dict that is a {type(checkpoint['state_dict']).__name__}, not a dict of tensors"
        )
        raise UserError(
            f"ckpt_path={path} is not a Lightning checkpoint (a torch file holding {holds}); "
            f"fix: give {CHECKPOINT_HINT}"
        )
    hyper = checkpoint.get("hyper_parameters")
    config = hyper.get("config") if isinstance(hyper, dict) else None
    model = config.get("model") if isinstance(config, dict) else None
    if (
        not isinstance(config, dict)
        or not isinstance(model, dict)
        or not isinstance(model.get("_target_"), str)
        or not isinstance(config.get("data"), dict)
    ):
        raise UserError(
            f"ckpt_path={path} was not written by bigmodel (no run config with a model and data in its "
            f"hyper-parameters); fix: give {CHECKPOINT_HINT}"
        )
    return checkpoint


def saved_config(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The resolved run config a checkpoint was trained with (targets that moved, at their new place)."""
    return with_current_targets(checkpoint["hyper_parameters"]["config"])


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save through a temp file renamed over `path`: readers see the old file or the new one."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


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
            print(
                f"warning: skipping unreadable checkpoint {path} ({exc.what}); "
                f"falling back to the previous good checkpoint"
            )
            continue
        step = int(checkpoint.get("global_step", 0)) if isinstance(checkpoint, dict) else 0
        epoch = int(checkpoint.get("epoch", 0)) if isinstance(checkpoint, dict) else 0
        found.append((step, epoch, path.name == "last.ckpt", path))
    return max(found)[3] if found else None
