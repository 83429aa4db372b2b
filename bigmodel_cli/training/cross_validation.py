"""cv=K: the K folds of one configuration in one job, and their statistics.

Each fold is a run of its own in <run>/fold_<k> (checkpoints, logs, metrics.json, its config),
trained with data.folds=K data.fold=k on all of the job's devices. The job's metrics.json holds the
mean over the folds of every metric, so a sweeper (hparams_search=optuna) optimises the
cross-validated score; cv.json holds each fold's metrics and per metric the mean, the sample sd and
a 95% t-interval of the mean. A job continued with resume= (or requeued by SLURM) keeps the folds
that finished and resumes the one that was cut where it stopped.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from bigmodel_cli.config.validation import validate
from bigmodel_cli.errors import UserError
from bigmodel_cli.process_state import is_rank_zero
from bigmodel_cli.runs import records
from bigmodel_cli.runs.index import METRICS_FILE, read_json
from bigmodel_cli.runs.resume import requeued

CV_FILE = "cv.json"
# Student's t quantile t(0.975, df) for df = 1..30; larger df use the Cornish-Fisher expansion.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def fold_dir(cfg: DictConfig, fold: int) -> Path:
    return Path(cfg.paths.output_dir) / f"fold_{fold}"


def fold_config(cfg: DictConfig, fold: int) -> DictConfig:
    """The job's config for one fold: data.folds/data.fold set, its own run directory (every
    `${paths.output_dir}` follows), resumed where the job is continued and the fold has begun."""
    one = copy.deepcopy(cfg)
    where = fold_dir(cfg, fold)
    continued = cfg.get("resume") or requeued()
    with open_dict(one):
        one.cv = None
        one.data.folds, one.data.fold = int(cfg.cv), fold
        one.paths.output_dir = str(where)
        one.resume = str(where) if continued and where.is_dir() else None
    return one


def check(cfg: DictConfig) -> None:
    validate(cfg)
    if "folds" not in cfg.data:
        raise UserError(
            f"cv={cfg.cv}: the data module {cfg.data.get('_target_')} has no folds setting; "
            f"fix: give it `folds` and `fold` arguments (see bigmodel_cli/data/splits.py:fold_positions)"
        )
    if cfg.data.get("folds") is not None:
        raise UserError(
            f"cv={cfg.cv} runs every fold itself, but data.folds={cfg.data.folds} data.fold={cfg.data.get('fold')} "
            f"picks one; fix: drop data.folds/data.fold (all folds), or drop cv (one fold)"
        )


def cross_validate(cfg: DictConfig, train: Callable[[DictConfig], dict[str, float]]) -> dict[str, float]:
    """Train every fold with `train` (the train command's run), then summarise; returns the mean
    of every metric over the folds."""
    check(cfg)
    per_fold = []
    for fold in range(int(cfg.cv)):
        one = fold_config(cfg, fold)
        finished = Path(one.paths.output_dir) / METRICS_FILE
        if one.resume and finished.is_file():
            per_fold.append(read_json(finished))
            continue
        if is_rank_zero():
            print(f"cv: fold {fold} of {cfg.cv} in {one.paths.output_dir}")
            saved = Path(one.paths.output_dir) / ".hydra" / "config.yaml"
            saved.parent.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(one, saved)  # the fold alone: `bigmodel train resume=<fold dir>`, reproduce
        metrics = train(one)
        records.write_metrics(one.paths.output_dir, metrics)
        per_fold.append(metrics)
    summary = summarise(per_fold)
    if is_rank_zero():
        records.write_json(Path(cfg.paths.output_dir) / CV_FILE, {"folds": per_fold, "summary": summary})
        print_table(per_fold, summary, cfg.paths.output_dir)
    return {name: stats["mean"] for name, stats in summary.items()}


def summarise(per_fold: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per metric every fold has: mean, sample sd, and the 95% t-interval of the mean."""
    names = [name for name in per_fold[0] if all(name in metrics for metrics in per_fold)]
    summary = {}
    for name in names:
        values = [float(metrics[name]) for metrics in per_fold]
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        half = t_975(len(values) - 1) * sd / math.sqrt(len(values))
        summary[name] = {"mean": mean, "sd": sd, "ci95_low": mean - half, "ci95_high": mean + half}
    return summary


def t_975(df: int) -> float:
    if df <= len(T_975):
        return T_975[df - 1]
    z = statistics.NormalDist().inv_cdf(0.975)
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def print_table(per_fold: list[dict[str, float]], summary: dict[str, dict[str, float]], run_dir) -> None:
    """Mean, sd and interval per metric; each fold's value too where the terminal is wide enough."""
    from rich.console import Console
    from rich.table import Table

    from bigmodel_cli.console import significant

    console = Console()
    width = max(map(len, summary), default=6) + 9 * len(per_fold) + 45
    folds = range(len(per_fold)) if console.width >= width else range(0)
    table = Table(title=f"cross-validation: {len(per_fold)} folds")
    table.add_column("metric", style="cyan", no_wrap=True)
    for fold in folds:
        table.add_column(f"fold {fold}", justify="right", no_wrap=True)
    for column in ("mean", "sd", "95% interval"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, stats in summary.items():
        table.add_row(
            name,
            *(significant(per_fold[fold][name]) for fold in folds),
            significant(stats["mean"]),
            significant(stats["sd"]),
            f"[{significant(stats['ci95_low'])}, {significant(stats['ci95_high'])}]",
        )
    console.print(table)
    more = "" if folds else " (each fold's metrics are there, the terminal is too narrow for them)"
    console.print(f"cv: {Path(run_dir) / CV_FILE}{more}", highlight=False, soft_wrap=True)
