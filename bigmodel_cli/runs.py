"""The run directory's records: run.json (what ran, where, with what, and how it ended) and
metrics.json (final metrics). Only rank zero writes; all writes are atomic (temp file + rename).

`RunRecorder` is a Hydra callback (wired in conf/hydra/default.yaml), so every subcommand and
every multirun job gets the same records without the tasks doing anything.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
PACKAGES = ("bigmodel-cli", "torch", "pytorch-lightning", "hydra-core", "omegaconf", "torchvision", "torchmetrics")


def is_rank_zero() -> bool:
    """True unless a launcher (torchrun, SLURM, Lightning's DDP children) says we are another rank."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key]) == 0
    return True


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_sha(cwd: str) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def command_line() -> list[str]:
    """The command as the user typed it (the CLI takes the subcommand out of sys.argv for Hydra)."""
    subcommand = os.environ.get("BIGMODEL_SUBCOMMAND")
    return ["bigmodel", *([subcommand] if subcommand else []), *sys.argv[1:]]


def write_metrics(output_dir: str | Path, metrics: dict[str, float]) -> None:
    if is_rank_zero():
        write_json(Path(output_dir) / METRICS_FILE, metrics)


class RunRecorder(Callback):
    """Writes run.json when a job starts (status "running") and updates it when it ends."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_rank_zero():
            return
        runtime = config.hydra.runtime
        task_cfg = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
        record = {
            "status": "running",
            "command": " ".join(command_line()),
            "argv": command_line(),
            "overrides": list(config.hydra.overrides.task),
            "task": config.get("task_name"),
            "seed": config.get("seed"),
            "output_dir": runtime.output_dir,
            "cwd": runtime.cwd,
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "versions": versions(),
            "git_sha": git_sha(runtime.cwd),
            "start_time": datetime.now().isoformat(timespec="milliseconds"),
            "config": resolved(task_cfg),
        }
        write_json(Path(runtime.output_dir) / RUN_FILE, record)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not is_rank_zero():
            return
        from bigmodel_cli.failures import JobFailure

        run_dir = Path(config.hydra.runtime.output_dir)
        path = run_dir / RUN_FILE
        record = read_json(path) if path.is_file() else {}
        record["end_time"] = datetime.now().isoformat(timespec="milliseconds")
        outcome = job_return._return_value  # the property would re-raise an escaped exception
        failed = isinstance(outcome, (JobFailure, BaseException))
        record["status"] = "failed" if failed else "completed"
        if isinstance(outcome, JobFailure):
            record["error"] = outcome.message()
        elif isinstance(outcome, BaseException):
            record["error"] = f"{type(outcome).__name__}: {outcome}"
        if (run_dir / METRICS_FILE).is_file():
            record["metrics"] = read_json(run_dir / METRICS_FILE)
        write_json(path, record)


def resolved(cfg: DictConfig) -> dict:
    """The config with interpolations resolved where they can be (a missing ??? value stays)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - an unresolvable value is reported by validation, not here
        return OmegaConf.to_container(cfg, resolve=False)


def update_run(run_dir: str | Path, **fields: Any) -> None:
    """Add what a task learns while running (e.g. the seed it drew) to run.json."""
    path = Path(run_dir) / RUN_FILE
    if is_rank_zero() and path.is_file():
        write_json(path, {**read_json(path), **fields})
