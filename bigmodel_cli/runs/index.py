"""Finding runs on disk and reading their run.json, with nothing heavier than json: `bigmodel
runs`, `diff`, `report` and shell completion read run directories through this module, so they
answer fast on thousands of runs (no torch, no Hydra)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
# Keys that do not change what a job computes: ignored when deciding two jobs are the same.
NOT_PART_OF_THE_JOB = ("skip_completed", "fail_fast", "resume", "run_name")
# Where runs live, below the directory bigmodel is started from.
RUN_ROOTS = ("outputs", "multirun")
GENERATED_NAME = re.compile(r"^\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{3}-([0-9a-f]{6})$")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def run_files(root: Path) -> Iterator[Path]:
    """Every run.json below root, in directory order (os.walk: no sorting or stat of every file)."""
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        if RUN_FILE in files:
            yield Path(directory) / RUN_FILE
        # A run's own subfolders (checkpoints, csv, .hydra) hold no runs.
        subdirs[:] = [d for d in subdirs if d not in ("checkpoints", "csv", ".hydra", "tensorboard")]


def find_records(root: Path, notes: list[str] | None = None) -> Iterator[tuple[Path, dict]]:
    """(run dir, run.json) for each readable run below root; a half-written file is skipped, and
    a file that holds something else than a run record (a JSON list, ...) is skipped with a line
    in `notes` when given."""
    for path in run_files(root):
        try:
            record = read_json(path)
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict):
            if notes is not None:
                notes.append(f"skipped {path}: {not_a_record(record)}")
            continue
        yield path.parent, record


def not_a_record(value) -> str:
    return f"it holds a JSON {type(value).__name__}, not a run record (an object)"


def parse_time(value) -> datetime | None:
    """A run.json time (ISO 8601) as a datetime; None when missing or not a date."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def duration(record: dict) -> float | None:
    """Seconds from start to end (to now for a run still running); None when unknown or not dates."""
    start = parse_time(record.get("start_time"))
    end = parse_time(record.get("end_time")) or (datetime.now() if record.get("status") == "running" else None)
    if start is None or end is None:
        return None
    try:
        return (end - start).total_seconds()
    except TypeError:  # one time with a zone, one without
        return None


def overrides_of(record: dict) -> dict[str, str]:
    """The overrides that define the run (`key=value`, without Hydra's +/~ prefixes)."""
    return dict(o.lstrip("+~").split("=", 1) for o in record.get("overrides", []) if "=" in o)


def run_id(run_dir: Path, root: Path) -> str:
    """A run's short name: its path below <root>/<subcommand>/ (outputs/train/<id>,
    multirun/train/<sweep>/<job>) with each generated directory name (time + tag, see
    config/resolvers.run_id) cut to its random tag; `diff` takes it in place of the path."""
    parts = run_dir.relative_to(root).parts if run_dir.is_relative_to(root) else run_dir.parts
    parts = parts[1:] if len(parts) > 1 else parts
    return short_name("/".join(parts)) or str(run_dir)


def short_name(path: str) -> str:
    """A path below a run root with each generated directory name cut to its random tag:
    train/2026-11-24_00-54-20-556-153a86 -> train/153a86."""
    return "/".join(GENERATED_NAME.sub(r"\1", p) for p in path.split("/"))


def resolve_id(run: str) -> Path | None:
    """The run directory with this short id under outputs/ or multirun/, if exactly one."""
    first, _, rest = run.partition("/")
    found = [
        d / rest if rest else d
        for root in RUN_ROOTS
        for d in Path(root).glob(f"*/*{first}")
        if (d / rest / RUN_FILE if rest else d / RUN_FILE).is_file()
    ]
    return found[0] if len(found) == 1 else None


def run_record(run: str | Path) -> tuple[Path, dict]:
    """A run directory (or its run.json) given on the command line, and its record."""
    from bigmodel_cli.errors import UserError

    path = Path(run)
    path = path if path.name == RUN_FILE else path / RUN_FILE
    if not path.is_file():  # a short id, as `bigmodel runs` shows it
        found = resolve_id(str(run))
        path = found / RUN_FILE if found else path
    if not path.is_file():
        raise UserError(
            f"{run} is not a run directory (no {RUN_FILE} in it); fix: give a directory under outputs/ "
            f"or multirun/ (`bigmodel runs` lists them)"
        )
    try:
        record = read_json(path)
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); fix: give another run") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: {not_a_record(record)}; fix: give another run")
    return path.parent, record
