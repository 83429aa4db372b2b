"""The run directory's records: run.json (what ran, where, with what, and how it ended) and
metrics.json (final metrics). Only rank zero writes; all writes are atomic (temp file + rename).

`RunRecorder` is a Hydra callback (wired in conf/hydra/default.yaml), so every subcommand and
every multirun job gets the same records without the tasks doing anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from bigmodel_cli.atomic import write_text
from bigmodel_cli.errors import UserError, choices_text
from bigmodel_cli.process_state import FAILED, SKIPPED, SUBCOMMAND_ENV, is_rank_zero, trusted
from bigmodel_cli.runs.failures import JobFailure, Preempted, Refused, is_interruption, stop_if_fail_fast
from bigmodel_cli.runs.index import METRICS_FILE, NOT_PART_OF_THE_JOB, RUN_FILE, read_json
from bigmodel_cli.runs.pruning import TrialPruned
from bigmodel_cli.runs.secrets import forget, mask_data, mask_override, mask_text, take_storage_credentials

PACKAGES = ("bigmodel-cli", "torch", "pytorch-lightning", "hydra-core", "omegaconf", "torchvision", "torchmetrics")


def write_json(path: Path, payload: dict) -> None:
    write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


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
    """The command as the user typed it, for run.json (the subcommand is kept out of Hydra's argv),
    with any credentials masked."""
    subcommand = os.environ.get(SUBCOMMAND_ENV)
    return ["bigmodel", *([subcommand] if subcommand else []), *map(mask_override, sys.argv[1:])]


def write_metrics(output_dir: str | Path, metrics: dict[str, float]) -> None:
    if is_rank_zero():
        write_json(Path(output_dir) / METRICS_FILE, metrics)


def config_hash(task_cfg: DictConfig) -> str:
    """A fingerprint of the job's config as written (interpolations unresolved, so the run directory
    does not enter it), without NOT_PART_OF_THE_JOB."""
    raw = OmegaConf.to_container(task_cfg, resolve=False)
    raw = {k: v for k, v in raw.items() if k not in NOT_PART_OF_THE_JOB}
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def find_completed(sweep_dir: Path, fingerprint: str) -> tuple[Path, dict] | None:
    """A job directory in the sweep whose run.json says completed with the same config fingerprint."""
    for path in sorted(Path(sweep_dir).glob(f"*/{RUN_FILE}")):
        try:
            record = read_json(path)
        except (OSError, ValueError):
            continue
        if record.get("status") == "completed" and record.get("config_hash") == fingerprint:
            return path.parent, record
    return None


def objective_value(cfg, metrics: dict[str, float]) -> float | None:
    """The number a sweeper optimises: the best value of the objective metric, else its last value."""
    objective = cfg.get("objective")
    return metrics.get(f"{objective}_best", metrics.get(objective)) if objective else None


class RunRecorder(Callback):
    """Writes run.json when a job starts (status "running") and updates it when it ends. With
    skip_completed, a sweep job whose config already completed in the sweep directory is skipped;
    with resume, the run keeps its start time and gains a resumed_at entry. Before Hydra saves any
    config, the storage URL's password is taken out of it (runs/secrets)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_before_writing(config)
        take_storage_credentials(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_before_writing(config)
        take_storage_credentials(config)
        self.sweep_started = time.time()

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        forget()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        forget()
        collect_job_failures(Path(config.hydra.sweep.dir), getattr(self, "sweep_started", 0.0))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_rank_zero():
            return
        runtime = config.hydra.runtime
        task_cfg = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
        run_dir = Path(runtime.output_dir)
        SKIPPED.pop(str(run_dir), None)  # from an earlier sweep in this process
        fingerprint = config_hash(task_cfg)
        if config.get("skip_completed") and config.hydra.mode == RunMode.MULTIRUN:
            done = find_completed(Path(config.hydra.sweep.dir), fingerprint)
            if done is not None:
                SKIPPED[str(run_dir)] = {**done[1], "run_dir": str(done[0])}
                if done[0].resolve() != run_dir.resolve():
                    write_json(
                        run_dir / RUN_FILE,
                        {
                            "status": "skipped",
                            "same_as": str(done[0]),
                            "overrides": [mask_override(o) for o in config.hydra.overrides.task],
                            "config_hash": fingerprint,
                        },
                    )
                return
        previous = read_json(run_dir / RUN_FILE) if config.get("resume") and (run_dir / RUN_FILE).is_file() else {}
        now = datetime.now().isoformat(timespec="milliseconds")
        record = {
            "status": "running",
            "command": " ".join(command_line()),
            "argv": command_line(),
            "overrides": [mask_override(o) for o in config.hydra.overrides.task],
            "task": config.get("task_name"),
            "seed": config.get("seed"),
            "output_dir": runtime.output_dir,
            "cwd": runtime.cwd,
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "versions": versions(),
            "git_sha": git_sha(runtime.cwd),
            "start_time": previous.get("start_time", now),
            "config": mask_data(resolved(task_cfg)),
            "config_hash": fingerprint,
            # The option picked in each config group; a resumed run keeps its first run's (its own
            # composition comes from the saved config, with no groups): what resume= checks against.
            "choices": previous.get("choices") or chosen_options(runtime.choices, config.hydra.overrides.task),
            # --trust-checkpoint: checkpoints this run loads may run code when unpickled.
            "trust_checkpoint": trusted(),
        }
        if previous:  # resumed: the same run in the same directory; note each resume
            record["resumed_at"] = [*previous.get("resumed_at", []), now]
        write_json(Path(runtime.output_dir) / RUN_FILE, record)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not is_rank_zero():
            return
        run_dir = Path(config.hydra.runtime.output_dir)
        if str(run_dir) in SKIPPED:  # its record stays as the completed job left it
            return
        path = run_dir / RUN_FILE
        record = read_json(path) if path.is_file() else {}
        record["end_time"] = datetime.now().isoformat(timespec="milliseconds")
        outcome = job_return._return_value  # the property would re-raise an escaped exception
        pruned = isinstance(outcome, TrialPruned)
        failed = not pruned and isinstance(outcome, (JobFailure, BaseException))
        interrupted = isinstance(outcome, JobFailure) and is_interruption(outcome.error)
        record["status"] = "pruned" if pruned else "interrupted" if interrupted else "failed" if failed else "completed"
        if pruned:
            record["pruned_after_epoch"] = outcome.epoch
        elif isinstance(outcome, JobFailure):
            record["error"] = outcome.message()
        elif isinstance(outcome, BaseException):
            record["error"] = mask_text(f"{type(outcome).__name__}: {outcome}")
        if (run_dir / METRICS_FILE).is_file():
            record["metrics"] = read_json(run_dir / METRICS_FILE)
        write_json(path, record)
        if record.get("mlflow"):
            from bigmodel_cli.runs.tracking import upload

            upload(run_dir, record)
        if (
            interrupted
            and config.hydra.mode == RunMode.MULTIRUN
            and (config.get("hparams_search") or {}).get("trial") is not None
        ):
            raise Preempted(outcome)  # an Optuna trial: the sweeper queues it again and stops
        if failed:
            stop_if_fail_fast(config)


OBJECTIVE_MODES = ("max", "min")


def refuse_before_writing(config: DictConfig) -> None:
    """Values that would fail only once the run directory exists (Lightning's checkpoint callback
    reads objective_mode), refused as one line before Hydra writes anything."""
    mode = config.get("objective_mode", "max")
    if mode not in OBJECTIVE_MODES:
        raise Refused(
            UserError(
                f"objective_mode={mode} is not known; valid choices: {choices_text(OBJECTIVE_MODES)} "
                f"(fix: objective_mode=max to maximise the objective, objective_mode=min to minimise it)"
            )
        )


def collect_job_failures(sweep_dir: Path, since: float) -> None:
    """Jobs a launcher ran in other processes (joblib, submitit) failed or were interrupted there,
    out of this process's sight: their run.json files say so, and the sweep's exit code counts them
    (those this sweep wrote: a named sweep's directory keeps the jobs of its earlier runs)."""
    known = {str(Path(f.output_dir).resolve()) for f in FAILED if f.output_dir}
    for path in sorted(sweep_dir.glob(f"*/{RUN_FILE}"), key=lambda p: (len(p.parent.name), p.parent.name)):
        record = read_json(path) if path.parent.name.isdigit() and path.stat().st_mtime >= since else {}
        if record.get("status") in ("failed", "interrupted") and str(path.parent.resolve()) not in known:
            FAILED.append(
                JobFailure(
                    UserError(record.get("error") or record["status"]),
                    record.get("overrides", []),
                    int(path.parent.name),
                    str(path.parent),
                )
            )


def chosen_options(choices, overrides) -> dict:
    """The option of each of bigmodel's groups (not hydra/*): Hydra's runtime choices, which leave
    out groups given a list (regularizer=[l2,dropout]); those come from the command line."""
    plain = OmegaConf.to_container(choices) if isinstance(choices, DictConfig) else dict(choices)
    chosen = {group: option for group, option in plain.items() if group != "hydra" and not group.startswith("hydra/")}
    for override in overrides:
        key, _, value = override.partition("=")
        if key.isidentifier() and key not in chosen and value.startswith("["):
            chosen[key] = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
    return chosen


def mark_interrupted(run_dir: Path) -> None:
    """A job stopped by Ctrl-C never reaches on_job_end: its run.json still says running."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return
    record = read_json(path)
    if record.get("status") == "running":
        end = datetime.now().isoformat(timespec="milliseconds")
        write_json(path, {**record, "status": "interrupted", "end_time": end, "error": "interrupted (Ctrl-C)"})


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
