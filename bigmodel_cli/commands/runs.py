"""bigmodel runs [dir ...]: the runs under outputs/ and multirun/ (or the given directories), newest
first: id, subcommand, status, the overrides that define it, objective, test metric, duration, age.
Reads run.json files only, so it lists thousands of runs in a moment."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

from bigmodel_cli.commands.tool_parser import ToolParser, count
from bigmodel_cli.console import print_fitted_table, short_age, short_duration, significant, slow_progress
from bigmodel_cli.errors import UserError
from bigmodel_cli.runs.index import (
    NOT_PART_OF_THE_JOB,
    RUN_ROOTS,
    duration,
    find_records,
    overrides_of,
    parse_time,
    run_id,
)

# Every status records.py writes (pruned: an Optuna trial stopped early).
STATUSES = ("completed", "failed", "interrupted", "pruned", "running", "skipped")
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
COLUMNS = ("id", "command", "status", "overrides", "objective", "test", "time", "age")
# What stays on a narrow terminal, most important first (--json has every field).
PRIORITY = ("id", "overrides", "status", "objective", "test", "command", "age", "time")


def summary(run_dir: Path, root: Path, record: dict, now: datetime, notes: list[str] | None = None) -> dict:
    """One run's row, as plain values (also what --json prints); a start time that is not a date
    leaves the age and time blank, with a line in `notes`."""
    metrics = record.get("metrics") or {}
    config = record.get("config") or {}
    objective = config.get("objective", "val/acc")
    test_key = next((k for k in ("test/acc", "test/loss") if k in metrics), None) or next(
        (k for k in metrics if k.startswith("test/")), None
    )
    started = record.get("start_time")
    start = parse_time(started)
    if started is not None and start is None and notes is not None:
        notes.append(f"{run_dir}: start_time {started!r} in its run.json is not a date; its age and time are blank")
    try:
        age = (now - start).total_seconds() if start is not None else None
    except TypeError:  # a time with a zone
        age = None
    return {
        "id": run_id(run_dir, root),
        "dir": str(run_dir),
        "subcommand": record.get("task", "?"),
        "status": record.get("status", "?"),
        "overrides": [f"{k}={v}" for k, v in overrides_of(record).items() if k not in NOT_PART_OF_THE_JOB],
        "objective": objective,
        "objective_value": metrics.get(f"{objective}_best", metrics.get(objective)),
        "test_metric": test_key,
        "test_value": metrics.get(test_key) if test_key else None,
        "duration_s": duration(record),
        "start_time": started if start is not None else None,
        "age_s": age,
        "error": record.get("error", ""),
    }


def since_seconds(text: str) -> float:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if not found:
        raise UserError(
            f"--since {text}: not an age; valid: a number and a unit ({', '.join(AGE_UNITS)}), e.g. --since 2d"
        )
    return float(found.group(1)) * AGE_UNITS[found.group(2)]


def select(rows: list[dict], status: str | None, since: str | None, match: str | None) -> list[dict]:
    if status:
        rows = [r for r in rows if r["status"] == status]
    if since:
        limit = since_seconds(since)
        rows = [r for r in rows if r["age_s"] is not None and r["age_s"] <= limit]
    if match:
        needle = match.lower()
        rows = [r for r in rows if needle in " ".join([r["id"], r["subcommand"], *r["overrides"]]).lower()]
    return rows


def headers(rows: list[dict]) -> list[str]:
    """Column names; the objective and test columns are named by their metric when every run shares it."""
    names = list(COLUMNS)
    for column, key in (("objective", "objective"), ("test", "test_metric")):
        shared = {r[key] for r in rows if r[key] is not None}
        if len(shared) == 1:
            names[COLUMNS.index(column)] = shared.pop()
    return names


def cells(row: dict, names: list[str]) -> list[str]:
    def metric(name_key: str, value_key: str, column: str) -> str:
        if row[value_key] is None:
            return ""
        shared = names[COLUMNS.index(column)] != column  # the metric's name is the column's
        return significant(row[value_key]) if shared else f"{row[name_key]} {significant(row[value_key])}"

    return [
        row["id"],
        row["subcommand"],
        row["status"],
        " ".join(row["overrides"]),
        metric("objective", "objective_value", "objective"),
        metric("test_metric", "test_value", "test"),
        short_duration(row["duration_s"]),
        short_age(row["age_s"]),
    ]


def main(argv: list[str]) -> int:
    parser = ToolParser(prog="bigmodel runs", description=__doc__)
    parser.add_argument("dirs", nargs="*", help="directories to search (default: outputs/ and multirun/)")
    parser.add_argument("--status", choices=STATUSES, help="only runs with this status")
    parser.add_argument("--since", help="only runs started this long ago or less: 30m, 12h, 2d, 1w")
    parser.add_argument("--match", "-k", help="only runs whose id, subcommand or overrides contain this text")
    parser.add_argument("--limit", type=count, default=50, help="show the newest N runs (default 50; 0: all)")
    parser.add_argument("--json", action="store_true", help="print the runs as JSON (for scripts; every run)")
    args = parser.parse_args(argv)
    roots = [Path(d) for d in args.dirs] or [Path(r) for r in RUN_ROOTS if Path(r).is_dir()]
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        raise UserError(f"{missing[0]} is not a directory; fix: give a directory of runs, e.g. outputs/")
    now = datetime.now()
    notes: list[str] = []
    found = (summary(d, root, r, now, notes) for root in roots for d, r in find_records(root, notes))
    rows = select(list(slow_progress(found, "reading runs")), args.status, args.since, args.match)
    rows.sort(key=lambda r: r["start_time"] or "", reverse=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        print_notes(notes, stderr=True)
        return 0
    print_notes(notes)
    if not rows:
        where = ", ".join(map(str, roots)) or "outputs/ or multirun/ (neither exists here)"
        print(f"no runs found in {where}" + (" matching the filters" if argv else ""))
        return 0
    shown = rows[: args.limit] if args.limit > 0 else rows
    more = f", the newest {len(shown)} shown (--limit 0: all)" if len(shown) < len(rows) else ""
    print_table(shown, f"{len(rows)} run(s), newest first{more}")
    return 0


def print_notes(notes: list[str], stderr: bool = False) -> None:
    """One line per run.json that could not be listed as it is (stderr beside --json's output)."""
    if notes:
        from rich.console import Console
        from rich.text import Text

        console = Console(stderr=stderr, highlight=False, soft_wrap=True)
        for note in notes:
            console.print(Text.assemble(("note:", "yellow"), " ", note))


def print_table(rows: list[dict], title: str) -> None:
    from rich import box
    from rich.console import Console

    names = headers(rows)
    priority = [COLUMNS.index(c) for c in PRIORITY]
    # The id stays whole (it is what `bigmodel diff` takes); the overrides fold.
    fold = COLUMNS.index("overrides")
    table_cells = [cells(row, names) for row in rows]
    print_fitted_table(
        Console(),
        names,
        table_cells,
        priority,
        "--json has every field",
        fold,
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
