"""bigmodel lr-find: Lightning's learning-rate range test on the composed experiment.

Prints the suggested lr and the exact override to use, and saves the loss-vs-lr plot as
lr_find.png in the run directory (training/lr_search.py; `bigmodel train optimizer.lr=auto` runs the
same search and then trains with the suggestion).
"""

from __future__ import annotations

from omegaconf import DictConfig

from bigmodel_cli.commands.job import prepare, print_summary, task_main
from bigmodel_cli.process_state import is_rank_zero
from bigmodel_cli.runs import records
from bigmodel_cli.training import lr_search
from bigmodel_cli.training.assembly import assemble_pieces


def run(cfg: DictConfig) -> dict[str, float]:
    prepare(cfg)
    pieces = assemble_pieces(cfg)
    lr, plot = lr_search.find_lr(cfg, pieces.module, pieces.datamodule, pieces.trainer)
    override = f"optimizer.lr={lr:.4g}"
    records.update_run(cfg.paths.output_dir, lr_found=lr, lr_find_plot=plot and str(plot))
    metrics = {"lr_find/suggested_lr": lr}
    shown = {"plot": str(plot)} if plot else {}
    print_summary(f"bigmodel lr-find: {cfg.paths.output_dir}", metrics, {**shown, "use": override})
    if is_rank_zero():
        plot_text = f"; plot: {plot}" if plot else ""
        print(f"suggested learning rate: {lr:.4g}{plot_text}\nuse it: bigmodel train <same overrides> {override}")
    return metrics


def main(cfg: DictConfig):
    return task_main(run, cfg)
