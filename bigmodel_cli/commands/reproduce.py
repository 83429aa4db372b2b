"""bigmodel reproduce <run dir> [overrides...] [--verify] [--tolerance T]: re-run a past run from its
saved .hydra/config.yaml (same seed and settings) into a new run directory. Warns when the package
versions, git sha or hardware differ from those in its run.json; --verify compares the new final
metrics with the saved metrics.json and exits 1 with the differences beyond the tolerance."""

from __future__ import annotations

import math
import os
import platform
import socket
from pathlib import Path

from bigmodel_cli.commands import SUBCOMMANDS
from bigmodel_cli.commands.tool_parser import ToolParser
from bigmodel_cli.errors import UserError, print_error
from bigmodel_cli.runs.index import METRICS_FILE, RUN_FILE, read_json
from bigmodel_cli.runs.records import git_sha, versions


def environment_differences(record: dict) -> list[str]:
    """What differs between the recorded run and this machine: versions, git sha, host, platform."""
    found = []
    now = versions()
    for name, then in (record.get("versions") or {}).items():
        if now.get(name) != then:
            found.append(f"{name} {then} -> {now.get(name)}")
    sha = git_sha(os.getcwd())
    if record.get("git_sha") and sha != record["git_sha"]:
        found.append(f"git sha {record['git_sha'][:10]} -> {(sha or 'none')[:10]}")
    for key, current in (("host", socket.gethostname()), ("platform", platform.platform())):
        if record.get(key) and record[key] != current:
            found.append(f"{key} {record[key]} -> {current}")
    return found


def compare_metrics(saved: dict[str, float], new: dict[str, float], tolerance: float) -> list[str]:
    """One line per metric that is missing on one side or differs by more than the tolerance."""
    lines = []
    for key in sorted(set(saved) | set(new)):
        a, b = saved.get(key), new.get(key)
        if a is None or b is None:
            lines.append(f"{key}: saved {a} new {b}")
        elif not (a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tolerance)):
            lines.append(f"{key}: saved {a!r} new {b!r} (diff {b - a:+.3g})")
    return lines


def main(argv: list[str]) -> int:
    from bigmodel_cli.commands.app import run_subcommand
    from bigmodel_cli.config.resolvers import run_id

    parser = ToolParser(prog="bigmodel reproduce", description=__doc__)
    parser.add_argument("run_dir", help="a past run directory, e.g. outputs/train/<run>")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied on top of the saved config")
    parser.add_argument("--verify", action="store_true", help="compare the new final metrics with the saved ones")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="largest allowed absolute difference per metric with --verify (default 0: exactly equal)",
    )
    args = parser.parse_args(argv)
    run = Path(args.run_dir)
    saved_config = run / ".hydra" / "config.yaml"
    if not saved_config.is_file():
        raise UserError(f"{run} is not a run directory (no .hydra/config.yaml); fix: give e.g. outputs/train/<run>")
    record = read_json(run / RUN_FILE) if (run / RUN_FILE).is_file() else {}
    for line in environment_differences(record):
        print(f"warning: differs from the recorded run: {line}")
    import yaml

    saved = yaml.safe_load(saved_config.read_text()) or {}
    task = saved.get("task_name") or record.get("task") or "train"
    if task not in SUBCOMMANDS:
        raise UserError(f"{run} was made by '{task}', which reproduce cannot re-run; valid: {', '.join(SUBCOMMANDS)}")
    new_dir = Path("outputs") / task / run_id()
    fresh = [f"{key}=null" for key in ("resume", "run_name") if saved.get(key) is not None]
    print(f"reproducing {run} into {new_dir}")
    code = run_subcommand(
        task,
        [
            "--config-path",
            str(run / ".hydra"),
            "--config-name",
            "config",
            f"hydra.run.dir={new_dir}",
            *fresh,
            *args.overrides,
        ],
    )
    if code != 0 or not args.verify:
        return code
    if not (run / METRICS_FILE).is_file():
        raise UserError(f"--verify needs {run}/{METRICS_FILE}, which is missing (the run did not finish)")
    differences = compare_metrics(read_json(run / METRICS_FILE), read_json(new_dir / METRICS_FILE), args.tolerance)
    if differences:
        return print_error(
            f"metrics differ from {run} beyond tolerance {args.tolerance}:\n  " + "\n  ".join(differences), None, code=1
        )
    print(f"verified: the final metrics of {new_dir} match {run} (tolerance {args.tolerance})")
    return 0
