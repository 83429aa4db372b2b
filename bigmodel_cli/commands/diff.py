"""bigmodel diff <run> <run>: what differs between two runs, the first question when a reproduction
does not match: config keys, package versions, seed and host, and the final metrics."""

from __future__ import annotations

from bigmodel_cli.commands.tool_parser import ToolParser
from bigmodel_cli.console import significant
from bigmodel_cli.runs.index import run_record

# run.json fields, besides config, versions and metrics, that can explain a difference.
CONTEXT = ("task", "seed", "host", "platform", "git_sha", "status")
MISSING = "-"


def flatten(node, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict) and node:
        out: dict[str, object] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: node}


def without_run_dir(values: dict[str, object], run_dir: str) -> dict[str, object]:
    """Paths inside a run's own directory always differ between runs: compare them as <run>/..."""
    return {k: v.replace(run_dir, "<run>") if isinstance(v, str) and run_dir else v for k, v in values.items()}


def changes(a: dict, b: dict) -> list[tuple[str, object, object]]:
    return [(k, a.get(k, MISSING), b.get(k, MISSING)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def sections(first: dict, second: dict) -> dict[str, list[tuple[str, object, object]]]:
    def config(record):
        return without_run_dir(flatten(record.get("config") or {}), record.get("output_dir", ""))

    return {
        "config": changes(config(first), config(second)),
        "run": changes({k: first.get(k) for k in CONTEXT}, {k: second.get(k) for k in CONTEXT}),
        "versions": changes(first.get("versions") or {}, second.get("versions") or {}),
        "metrics": changes(first.get("metrics") or {}, second.get("metrics") or {}),
    }


def shown(value) -> str:
    return significant(value) if isinstance(value, float) else str(value)


def main(argv: list[str]) -> int:
    parser = ToolParser(prog="bigmodel diff", description=__doc__)
    parser.add_argument("first", help="a run directory (outputs/train/<id>, multirun/train/<id>/<n>)")
    parser.add_argument("second", help="the run to compare it with")
    args = parser.parse_args(argv)
    (dir_a, first), (dir_b, second) = run_record(args.first), run_record(args.second)
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    console.print(f"A: {dir_a}\nB: {dir_b}", highlight=False, soft_wrap=True)
    found = sections(first, second)
    if not any(found.values()):
        console.print("no differences", highlight=False)
        return 0
    for title, rows in found.items():
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        table.add_column("key", style="cyan", overflow="fold")
        table.add_column("A", overflow="fold")
        table.add_column("B", overflow="fold")
        if title == "metrics":
            table.add_column("B - A", justify="right")
        for key, a, b in rows:
            row = [key, shown(a), shown(b)]
            if title == "metrics":
                row.append(significant(b - a) if isinstance(a, float) and isinstance(b, float) else "")
            table.add_row(*map(Text, row))  # config values are user text: no markup
        console.print(table)
    return 0
