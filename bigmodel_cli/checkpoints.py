"""Loading checkpoints safely: `weights_only=True` always, and one clear line for every way a
checkpoint path can be wrong (missing, not a checkpoint, truncated, unsafe, not ours)."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

from bigmodel_cli.errors import UserError

CHECKPOINT_HINT = "a .ckpt file from a run's checkpoints/ folder, e.g. outputs/train/<run>/checkpoints/best.ckpt"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, loaded with weights_only=True onto the CPU."""
    import torch

    path = Path(path)
    if not path.is_file():
        hint = f" (it is a directory; try {path}/checkpoints/best.ckpt)" if path.is_dir() else ""
        raise UserError(f"ckpt_path={path} does not exist{hint}; fix: give {CHECKPOINT_HINT}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        culprit = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if culprit is None:
            raise UserError(f"ckpt_path={path} is not a readable checkpoint (corrupt or not a checkpoint); "
                            f"fix: give {CHECKPOINT_HINT}") from None
        raise UserError(f"ckpt_path={path} holds objects ({culprit.group(1)}) "
                        f"that need unsafe unpickling, which can run arbitrary code; refused. Fix: only load "
                        f"checkpoints written by bigmodel, or re-save the weights as a plain state dict") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"ckpt_path={path} is not a readable checkpoint (truncated or corrupt: "
                        f"{str(exc).splitlines()[0][:120]}); fix: give {CHECKPOINT_HINT}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"ckpt_path={path} is not a Lightning checkpoint (no state_dict); fix: give {CHECKPOINT_HINT}")
    if "config" not in checkpoint.get("hyper_parameters", {}):
        raise UserError(f"ckpt_path={path} was not written by bigmodel (no run config in its hyper-parameters); "
                        f"fix: give {CHECKPOINT_HINT}")
    return checkpoint


def saved_config(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The resolved run config a checkpoint was trained with."""
    return checkpoint["hyper_parameters"]["config"]
