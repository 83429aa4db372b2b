"""bigmodel train: assemble the run, fit (validating every epoch), test the best checkpoint, record;
with cv=K, that for each of the K folds (training/cross_validation.py)."""

from __future__ import annotations

from omegaconf import DictConfig

from bigmodel_cli.checkpoints.files import load_checkpoint
from bigmodel_cli.commands.job import collect, prepare, print_summary, task_main
from bigmodel_cli.runs import records
from bigmodel_cli.runs.pruning import TrialPruned
from bigmodel_cli.training.assembly import assemble_training
from bigmodel_cli.training.cross_validation import cross_validate


def run(cfg: DictConfig) -> dict[str, float]:
    if cfg.get("cv"):
        return cross_validate(cfg, fit_and_test)
    return fit_and_test(cfg)


def fit_and_test(cfg: DictConfig) -> dict[str, float]:
    prepare(cfg)
    run = assemble_training(cfg)
    run.fit()
    trainer, checkpoint, reports = run.trainer, run.trainer.checkpoint_callback, run.reports
    # A run resumed after its last epoch fits nothing: its metrics are the checkpoint's.
    metrics = collect(run.resume_state.resumed_metrics, ("train/", "val/")) | collect(
        trainer.callback_metrics, ("train/", "val/")
    )
    notes = {}
    if checkpoint is not None and checkpoint.best_model_score is not None:
        metrics[f"{checkpoint.monitor}_best"] = float(checkpoint.best_model_score)
    if reports is not None and reports.pruned_at is not None:  # a losing trial: no test, the sweep goes on
        records.write_metrics(cfg.paths.output_dir, metrics)
        print_summary(f"bigmodel train: {cfg.paths.output_dir} (trial pruned after epoch {reports.pruned_at})", metrics)
        raise TrialPruned(reports.pruned_at, reports.last_value)
    if cfg.get("test_after_fit", True):
        best = checkpoint.best_model_path if checkpoint is not None else ""
        if best:
            run.module.load_state_dict(load_checkpoint(best)["state_dict"])
        notes["tested"] = best or "final weights (no checkpoint was saved)"
        trainer.test(run.module, datamodule=run.datamodule, verbose=False)
        metrics.update(collect(trainer.callback_metrics, ("test/",)))
    if checkpoint is not None and checkpoint.best_model_path:
        records.update_run(cfg.paths.output_dir, best_checkpoint=checkpoint.best_model_path)
    print_summary(f"bigmodel train: {cfg.paths.output_dir}", metrics, notes)
    return metrics


def main(cfg: DictConfig):
    return task_main(run, cfg)
