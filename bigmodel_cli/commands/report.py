"""bigmodel report <sweep dir or runs dir>: every job found below the directory (each has a run.json),
as a rich table sorted by the objective, summary.csv and summary.md, and PNG plots (the objective
against each swept parameter; learning curves of the top jobs). Jobs that repeat a configuration
with other seeds are also summed up per configuration (mean ± sd, and a permutation test against
the best one: runs/repeats.py) in repeats.csv. Reads whatever is there, so it works on a sweep that
is still running."""

from __future__ import annotations

import csv
from pathlib import Path

from bigmodel_cli.atomic import atomic_path, write_text
from bigmodel_cli.commands.tool_parser import ToolParser, count
from bigmodel_cli.console import print_fitted_table, short_duration, significant, slow_progress
from bigmodel_cli.errors import UserError
from bigmodel_cli.extras import has_matplotlib, missing_plots, pyplot
from bigmodel_cli.runs.index import (
    METRICS_FILE,
    NOT_PART_OF_THE_JOB,
    duration,
    find_records,
    overrides_of,
    read_json,
    short_name,
)
from bigmodel_cli.runs.repeats import group_repeats, permutation_p

SUMMARY_METRICS = ("val/acc", "val/loss", "test/acc", "test/loss", "train/loss")
# Overrides that name a job rather than set a parameter (the Optuna trial a job ran).
JOB_IDENTITY = ("hparams_search.trial",)


def load_jobs(root: Path) -> list[dict]:
    jobs = []
    for run_dir, record in slow_progress(find_records(root), "reading runs"):
        if record.get("status") == "skipped":
            continue  # a duplicate of a job listed under its own directory
        metrics = record.get("metrics")
        if metrics is None and (run_dir / METRICS_FILE).is_file():
            metrics = read_json(run_dir / METRICS_FILE)
        if metrics is None:  # still running: the last logged values
            metrics = {k: v[-1][1] for k, v in curves(run_dir).items() if v}
        config = record.get("config") or {}
        jobs.append(
            {
                "dir": run_dir,
                "name": str(run_dir.relative_to(root)) if run_dir != root else run_dir.name,
                "status": record.get("status", "?"),
                "error": record.get("error", ""),
                "overrides": overrides_of(record),
                "metrics": metrics or {},
                "duration": duration(record),
                "objective": config.get("objective", "val/acc"),
                "mode": config.get("objective_mode", "max"),
                "config": config,
            }
        )
    return jobs


def curves(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """metric -> [(epoch, value)] from the run's csv/metrics.csv (epoch-level rows)."""
    path = run_dir / "csv" / "metrics.csv"
    found: dict[str, list[tuple[float, float]]] = {}
    if not path.is_file():
        return found
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            for key, value in row.items():
                if value and key not in ("epoch", "step") and not key.endswith("_step"):
                    found.setdefault(key, []).append((float(row["epoch"]), float(value)))
    return found


def objective_of(job: dict) -> float | None:
    m = job["metrics"]
    return m.get(f"{job['objective']}_best", m.get(job["objective"]))


def sort_jobs(jobs: list[dict]) -> list[dict]:
    def key(job):
        value = objective_of(job)
        if value is None:
            return (1, 0.0)
        return (0, -value if job["mode"] == "max" else value)

    return sorted(jobs, key=key)


def differing(jobs: list[dict]) -> list[str]:
    """Override keys whose value is not the same in every job (run-control flags aside)."""
    keys = sorted({k for job in jobs for k in job["overrides"] if k not in (*NOT_PART_OF_THE_JOB, *JOB_IDENTITY)})
    return [k for k in keys if len({job["overrides"].get(k) for job in jobs}) > 1]


def rows(jobs: list[dict], params: list[str]) -> tuple[list[str], list[list[str]]]:
    objective = jobs[0]["objective"] if jobs else "val/acc"
    metric_keys = [objective] + [
        m for m in SUMMARY_METRICS if m != objective and any(m in job["metrics"] for job in jobs)
    ]
    header = ["job", *params, f"{objective} (best)", *metric_keys, "status", "duration_s"]
    table = []
    for job in jobs:
        best = objective_of(job)
        table.append(
            [
                job["name"],
                *(job["overrides"].get(p, "") for p in params),
                "" if best is None else significant(best),
                *("" if job["metrics"].get(m) is None else significant(job["metrics"][m]) for m in metric_keys),
                job["status"] + (f": {job['error'][:60]}" if job["error"] else ""),
                "" if job["duration"] is None else f"{job['duration']:.1f}",
            ]
        )
    return header, table


def repeat_rows(jobs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """One row per configuration repeated over seeds or folds, best mean first: its settings, the number of
    repeats, mean ± sd of the objective, and the p-value of its difference from the best one."""
    groups = group_repeats(jobs, objective_of, (*NOT_PART_OF_THE_JOB, *JOB_IDENTITY))
    if not groups:
        return [], []
    keys = sorted({k for g in groups for k, _ in g.settings if len({dict(h.settings).get(k) for h in groups}) > 1})
    groups.sort(key=lambda g: -g.mean if jobs[0]["mode"] == "max" else g.mean)
    best = groups[0]
    header = [*keys, "repeats", f"{jobs[0]['objective']} mean", "sd", "p vs best"]
    table = [
        [
            *(dict(g.settings).get(k, "") for k in keys),
            str(len(g.values)),
            significant(g.mean),
            significant(g.sd),
            "(best)" if g is best else significant(permutation_p(g.values, best.values)),
        ]
        for g in groups
    ]
    return header, table


def write_tables(root: Path, header: list[str], table: list[list[str]]) -> None:
    with atomic_path(root / "summary.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(table)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table]
    write_text(root / "summary.md", "\n".join(lines) + "\n")


def save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)


def plot(root: Path, jobs: list[dict], params: list[str], top: int) -> list[Path]:
    plt = pyplot()

    written = []
    scored = [job for job in jobs if objective_of(job) is not None]
    objective = jobs[0]["objective"] if jobs else "val/acc"
    for param in params:
        values = [job["overrides"].get(param, "") for job in scored]
        try:
            xs, labels = [float(v) for v in values], None
        except ValueError:
            labels = sorted(set(values))
            xs = [labels.index(v) for v in values]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.scatter(xs, [objective_of(job) for job in scored])
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels)
        elif xs and min(xs) > 0 and max(xs) / min(xs) >= 100:
            ax.set_xscale("log")
        ax.set_xlabel(param)
        ax.set_ylabel(objective)
        ax.set_title(f"{objective} vs {param}")
        fig.tight_layout()
        path = root / f"plot_{param.replace('/', '_').replace('.', '_')}.png"
        save_figure(fig, path)
        plt.close(fig)
        written.append(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for job in scored[:top]:
        points = curves(job["dir"]).get(objective, [])
        if points:
            ax.plot(*zip(*points), marker="o", label=job["name"])
    ax.set_xlabel("epoch")
    ax.set_ylabel(objective)
    ax.set_title(f"learning curves, top {top} jobs")
    if ax.lines:
        ax.legend(fontsize="small")
    fig.tight_layout()
    path = root / "learning_curves.png"
    save_figure(fig, path)
    plt.close(fig)
    written.append(path)
    return written


def print_table(console, title: str, header: list[str], table: list[list[str]], jobs: list[dict], n_params: int):
    """The table on the terminal: the columns that fit its width, the most telling first (job,
    objective, status, swept parameters, time), rather than every column folded letter by letter;
    summary.csv has them all. Errors follow the table, one line each."""
    from rich.text import Text

    header, table = terminal_cells(header, table)
    # Columns: job, the swept parameters, the objective's best, the metrics, status, time.
    priority = [0, n_params + 1, header.index("status"), *range(1, n_params + 1), header.index("time")]
    print_fitted_table(console, header, table, priority, "in summary.csv", title=title, title_justify="left")
    for job in jobs:
        if job["error"]:
            line = Text(f"{short_name(job['name'])} {job['status']}: {job['error']}")
            console.print(line, no_wrap=True, overflow="ellipsis")


def terminal_cells(header: list[str], table: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """summary.csv's cells, shortened for a terminal: generated run names to their tag, the status
    without its error (printed under the table), durations as 1m05s."""
    short = {
        "job": short_name,
        "status": lambda cell: cell.split(":", 1)[0],
        "duration_s": lambda cell: short_duration(float(cell)) if cell else "",
    }
    cells = [[short.get(name, str)(cell) for name, cell in zip(header, row)] for row in table]
    return ["time" if name == "duration_s" else name for name in header], cells


def main(argv: list[str]) -> int:
    parser = ToolParser(prog="bigmodel report", description=__doc__)
    parser.add_argument("directory", help="a sweep directory (multirun/train/<id>) or a runs directory (outputs/)")
    parser.add_argument("--top", type=count, default=5, help="learning curves of this many best jobs (default 5)")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    root = Path(args.directory)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; fix: give a sweep directory (multirun/train/<id>) or outputs/")
    jobs = sort_jobs(load_jobs(root))
    if not jobs:
        raise UserError(
            f"no runs under {root} (no run.json found); fix: give a sweep directory "
            f"(multirun/train/<id>) or a runs directory (outputs/train)"
        )
    params = differing(jobs)
    header, table = rows(jobs, params)
    write_tables(root, header, table)
    drawing = not args.no_plots and has_matplotlib()
    plots, notes = (plot(root, jobs, params, args.top), []) if drawing else ([], [])
    if drawing and jobs[0]["config"].get("hparams_search"):
        plots, notes = study_plots(root, jobs, plots)
    if not args.no_plots and not drawing:
        notes.append(missing_plots("plots"))
    from rich.console import Console

    console = Console()
    print_table(console, f"{len(jobs)} job(s) in {root}, best first", header, table, jobs, len(params))
    repeat_header, repeats = repeat_rows(jobs)
    if repeats:
        with atomic_path(root / "repeats.csv") as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows([repeat_header, *repeats])
        title = "over seeds and folds: mean ± sd per configuration (p: permutation test against the best)"
        print_fitted_table(
            console,
            repeat_header,
            repeats,
            list(range(len(repeat_header))),
            "in repeats.csv",
            title=title,
            title_justify="left",
        )
    console.print(
        f"wrote {root / 'summary.csv'}, {root / 'summary.md'}"
        + (f", {root / 'repeats.csv'}" if repeats else "")
        + (f" and {len(plots)} plot(s): {', '.join(p.name for p in plots)}" if plots else "")
    )
    for note in notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)  # one line, as written
    return 0


def study_plots(root: Path, jobs: list[dict], plots: list[Path]) -> tuple[list[Path], list[str]]:
    """An Optuna search's own plots beside the others (a study whose storage cannot be read is a note)."""
    from bigmodel_cli.search.plots import find_study, write_study_plots

    try:
        study = find_study(root, jobs[0]["config"])
    except Exception as exc:  # noqa: BLE001 - the table and the other plots stand without the study
        return plots, [f"the Optuna study could not be read: {str(exc).splitlines()[0]}"]
    if study is None:
        return plots, []
    written, notes = write_study_plots(root, study)
    return [*plots, *written], notes
