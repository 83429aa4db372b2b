"""Lightning's learning-rate range test on a run's pieces, and optimizer.lr=auto: the search
before training (`tune`), and the lr it chose when the run resumes (`reuse`). `bigmodel lr-find`
(commands/lr_find.py) runs the search alone.
"""

from __future__ import annotations

import copy
from pathlib import Path

from omegaconf import DictConfig, open_dict

from bigmodel_cli.atomic import atomic_path
from bigmodel_cli.errors import UserError
from bigmodel_cli.extras import has_matplotlib, missing_plots, pyplot
from bigmodel_cli.process_state import is_rank_zero
from bigmodel_cli.runs import records

AUTO = "auto"
PLOT = "lr_find.png"


def wants_search(cfg: DictConfig) -> bool:
    return cfg.optimizer.get("lr") == AUTO


def find_lr(cfg: DictConfig, module, datamodule, trainer) -> tuple[float, Path | None]:
    """Run the range test (the module's weights and the trainer are restored afterwards);
    returns the suggested lr and the path of the saved plot (None without matplotlib: one note line)."""
    from pytorch_lightning.tuner import Tuner

    settings = dict(cfg.get("lr_find") or {})
    # The finder sets the lr itself at every step; any number lets the optimizer be built.
    module.set_learning_rate(settings.get("min_lr", 1e-6))
    searcher, data = search_pieces(trainer, datamodule)
    finder = Tuner(searcher).lr_find(module, datamodule=data, update_attr=False, **settings)
    if finder is None:
        raise UserError(
            "the learning-rate finder does not run with trainer.fast_dev_run; fix: drop debug=fdr "
            "(or trainer.fast_dev_run) or give optimizer.lr a number"
        )
    suggestion = steepest_descent(finder.results)
    if suggestion is None:
        raise UserError(
            f"the learning-rate finder got too few points ({len(finder.results.get('lr', []))}) to "
            f"suggest an lr; fix: raise lr_find.num_training or trainer.max_epochs, or lower "
            f"lr_find.early_stop_threshold's strictness (lr_find.early_stop_threshold=null)"
        )
    return float(suggestion), save_plot(finder, suggestion, Path(cfg.paths.output_dir) / PLOT)


def search_pieces(trainer, datamodule):
    """The trainer and data module the range test runs on: the run's own, but under a strategy
    that spawns its processes (accelerator=ddp_spawn) the test would run in them, and its results
    would stay there; so it runs here, on one device of the same accelerator, at the run's
    precision, batch limits, gradient clipping and accumulation, and every process then trains
    with its lr. It reads a copy of the data module: the one pickled for the processes must not
    hold datasets set up here (char_lm's token tensors failed to unpickle in them)."""
    from pytorch_lightning import Trainer
    from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    if not isinstance(trainer.strategy.launcher, _MultiProcessingLauncher):
        return trainer, datamodule
    searcher = Trainer(
        accelerator=trainer.accelerator,
        devices=1,
        precision=trainer.precision,
        max_epochs=trainer.max_epochs,
        limit_train_batches=trainer.limit_train_batches,
        limit_val_batches=trainer.limit_val_batches,
        gradient_clip_val=trainer.gradient_clip_val,
        gradient_clip_algorithm=trainer.gradient_clip_algorithm,
        accumulate_grad_batches=trainer.accumulate_grad_batches,
        default_root_dir=trainer.default_root_dir,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return searcher, copy.deepcopy(datamodule)


def steepest_descent(results: dict, skip_begin: int = 10, skip_end: int = 1) -> float | None:
    """The lr where the (smoothed) loss falls fastest per decade of lr, the first `skip_begin`
    and last `skip_end` points left out (too early to trust, already diverging). Per decade, not
    per unit of lr as Lightning's own suggestion() differentiates: on an exponential sweep the
    latter favours the smallest lrs, where a unit of lr is many decades (measured in
    scripts/results.py's lr row: 3.5x below the best lr of a sweep). None with too few points."""
    import math

    import torch

    kept = [
        (lr, loss)
        for lr, loss in list(zip(results["lr"], results["loss"]))[skip_begin : len(results["lr"]) - skip_end]
        if lr > 0 and math.isfinite(loss)
    ]
    if len(kept) < 2:
        return None
    lrs, losses = (torch.tensor(values, dtype=torch.float64) for values in zip(*kept))
    slopes = torch.gradient(losses, spacing=[lrs.log10()])[0]  # central differences, one-sided at the ends
    return kept[int(slopes.argmin())][0]


def save_plot(finder, suggested: float, path: Path) -> Path | None:
    if not has_matplotlib():
        if is_rank_zero():
            print(f"note: {missing_plots(f'the learning-rate plot ({path.name})')}")
        return None
    plt = pyplot()
    figure = finder.plot(suggest=False, show=False)
    axes = figure.axes[0]
    loss = finder.results["loss"][finder.results["lr"].index(suggested)]
    axes.plot(suggested, loss, "o", color="red", label=f"suggested: {suggested:.3g}")
    axes.legend()
    axes.set_title("learning-rate range test")
    if is_rank_zero():
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def tune(cfg: DictConfig, module, datamodule, trainer) -> float:
    """optimizer.lr=auto: find the lr, then make the run (its module, config and run.json) use it."""
    lr, plot = find_lr(cfg, module, datamodule, trainer)
    module.set_learning_rate(lr)
    with open_dict(cfg):
        cfg.optimizer.lr = lr
    records.update_run(cfg.paths.output_dir, lr_found=lr, lr_find_plot=plot and str(plot))
    if is_rank_zero():
        shown = f" (plot: {plot})" if plot else ""
        print(f"optimizer.lr=auto: the learning-rate finder suggests {lr:.4g}{shown}; training with it")
    return lr


def reuse(cfg: DictConfig, module, checkpoint: dict) -> float:
    """optimizer.lr=auto when resuming: the lr the finder chose for this run, from its checkpoint
    (searching again would cost the search and could suggest another lr)."""
    lr = float(checkpoint["hyper_parameters"]["config"]["optimizer"]["lr"])
    module.set_learning_rate(lr)
    with open_dict(cfg):
        cfg.optimizer.lr = lr
    if is_rank_zero():
        print(f"optimizer.lr=auto: resuming with the lr the finder chose for this run, {lr:.4g}")
    return lr
