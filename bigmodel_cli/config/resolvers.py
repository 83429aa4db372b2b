"""OmegaConf resolvers the config tree uses; registered before Hydra composes anything."""

from __future__ import annotations

import secrets
from datetime import datetime

from omegaconf import OmegaConf


def run_id() -> str:
    """A run-directory name: time to the millisecond plus a random tag, so that two runs started
    in the same millisecond (a sweep, two terminals) still get separate directories."""
    now = datetime.now()
    return f"{now:%Y-%m-%d_%H-%M-%S}-{now.microsecond // 1000:03d}-{secrets.token_hex(3)}"


def run_dir(base: str, resume, name, fresh_id: str) -> str:
    """The run directory: the run being resumed (resume=<run dir>), else <base>/<name>, where name
    is run_name when set (so resume=auto can find it again) or else the fresh run id."""
    if resume not in (None, "", "auto"):
        return str(resume)
    return f"{base}/{name or fresh_id}"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("run_id"):
        # Cached: every reference to ${run_id:} in one config is the same directory.
        OmegaConf.register_new_resolver("run_id", run_id, use_cache=True)
    if not OmegaConf.has_resolver("run_dir"):
        OmegaConf.register_new_resolver("run_dir", run_dir)
    if not OmegaConf.has_resolver("floordiv"):
        # e.g. crop padding of an eighth of the image side: ${floordiv:${data.image_size},8}
        OmegaConf.register_new_resolver("floordiv", lambda a, b: int(a) // int(b))
