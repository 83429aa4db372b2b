"""What every subcommand job does around its own work: validate, seed, report and record metrics."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from bigmodel_cli.config.validation import validate
from bigmodel_cli.process_state import is_rank_zero
from bigmodel_cli.runs import records
from bigmodel_cli.runs.ddp_job import check_world, peer_lost


def prepare(cfg: DictConfig) -> int:
    """Validate the config, then seed everything; returns the seed used (drawn if seed=null)."""
    import pytorch_lightning as pl

    validate(cfg)
    check_world(cfg)  # under srun: one task per device, or one line
    seed = cfg.get("seed")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
        with open_dict(cfg):
            cfg.seed = seed
        saved = Path(cfg.paths.output_dir) / ".hydra" / "config.yaml"
        if saved.is_file() and is_rank_zero():  # the saved config must rerun this exact run
            OmegaConf.save(cfg, saved)
    records.update_run(cfg.paths.output_dir, seed=seed)
    pl.seed_everything(seed, workers=True, verbose=False)
    return seed


def collect(callback_metrics: dict, prefixes: tuple[str, ...] = ("train/", "val/", "test/")) -> dict[str, float]:
    """Plain floats from Lightning's callback_metrics, for metrics.json and the summary table."""
    return {
        k: float(v)
        for k, v in sorted(callback_metrics.items())
        if k.startswith(prefixes) and not k.endswith(("_step", "_epoch"))
    }


def print_summary(title: str, metrics: dict[str, float], notes: dict[str, str] | None = None) -> None:
    """The final metrics as one table, a row per metric and a column per split (train, val, test),
    to 4 significant digits; then the notes (paths), one line each."""
    if not is_rank_zero():
        return
    from rich.console import Console
    from rich.table import Table

    from bigmodel_cli.console import significant

    splits: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        split, _, name = key.rpartition("/")
        splits.setdefault(split, {})[name] = value
    names = list(dict.fromkeys(name for values in splits.values() for name in values))
    table = Table()
    table.add_column("metric", style="cyan")
    for split in splits:
        table.add_column(split or "value", justify="right")
    for name in names:
        table.add_row(name, *(significant(values[name]) if name in values else "" for values in splits.values()))
    console = Console()
    console.print(title, highlight=False, soft_wrap=True)
    console.print(table)
    for key, value in (notes or {}).items():
        console.print(f"{key}: {value}", highlight=False, soft_wrap=True)


def task_main(run: Callable[[DictConfig], dict[str, float]], cfg: DictConfig):
    """Hydra task function body: run, save metrics.json, return the objective for sweepers."""
    try:
        metrics = run(cfg)
    except Exception as exc:
        lost = peer_lost(exc, cfg.paths.output_dir)  # another DDP rank died: one line, not the collective's traceback
        if lost is None:
            raise
        raise lost from None
    records.write_metrics(cfg.paths.output_dir, metrics)
    return records.objective_value(cfg, metrics)
