"""Where after-training results go, and how they are kept: one table per kind (export, compress,
explain) in the trained run's directory, as <kind>.json and <kind>.md. A new result replaces the
row with the same key (format, method) and keeps the others, so variants measured at different
times sit side by side."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bigmodel_cli.atomic import write_text
from bigmodel_cli.console import significant
from bigmodel_cli.errors import UserError


def require_counts(cfg, examples: dict[str, int]) -> None:
    """Settings that count something (samples, steps, repeats, batches) must be 1 or more: a 0
    would divide by zero or measure nothing, and must not replace a good row of the table.
    `examples`: each key and a value to suggest."""
    for key, example in examples.items():
        value = cfg.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(
                f"{key}={value} is not a count of 1 or more; fix: {key}={example} (or any whole number >= 1)"
            )


def run_dir_of(ckpt_path: str) -> Path:
    """The run a checkpoint belongs to: <run>/checkpoints/best.ckpt -> <run>; a checkpoint kept
    elsewhere -> its own directory."""
    path = Path(ckpt_path).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def results_dir(ckpt_path: str, chosen: str | None, kind: str) -> Path:
    """<run>/<kind>/ (or `results_dir=` when given), created and checked writable up front so a
    long measurement never ends in a permission error."""
    where = Path(chosen) if chosen else run_dir_of(ckpt_path) / kind
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot write {kind} results to {where}: {exc.strerror}; fix: results_dir=<a writable directory>"
        ) from None
    if not os.access(where, os.W_OK):
        raise UserError(
            f"cannot write {kind} results to {where}: not writable; fix: results_dir=<a writable directory>"
        )
    return where


def write_table(where: Path, kind: str, key: str, rows: list[dict]) -> tuple[Path, Path]:
    """Merge `rows` into <where>/<kind>.json (a row with the same `key` is replaced) and rewrite
    <kind>.md from it; returns both paths."""
    path = where / f"{kind}.json"
    kept = json.loads(path.read_text()) if path.is_file() else []
    new = {row[key] for row in rows}
    merged = [row for row in kept if row.get(key) not in new] + rows
    write_text(path, json.dumps(merged, indent=2) + "\n")
    markdown = where / f"{kind}.md"
    write_text(markdown, markdown_table(merged))
    return path, markdown


def markdown_table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(name for row in rows for name in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(name)) for name in columns) + " |")
    return "\n".join(lines) + "\n"


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return significant(value)
    return str(value)


def print_rows(title: str, rows: list[dict], key: str, paths: list[Path]) -> None:
    """The rows just measured on the terminal, turned on their side (a column per row, named by its
    `key`; a line per measurement) so that they fit 80 columns; then the files written."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("")
    for row in rows:
        table.add_column(str(row[key]), justify="right", overflow="fold")
    for name in dict.fromkeys(name for row in rows for name in row if name != key):
        table.add_row(name, *(Text(cell(row.get(name))) for row in rows))
    console = Console()
    console.print(title, highlight=False, soft_wrap=True)
    console.print(table)
    for path in paths:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
