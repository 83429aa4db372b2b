"""A sweep job reporting to its Optuna trial: after every validation, rank 0 reports the objective
through the study's storage (so it works under any launcher and on any host) and asks the pruner;
every rank follows rank 0's answer, so a DDP job stops on all its ranks together."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from bigmodel_cli.search.study import SearchSettings, make_pruner, open_storage, quiet_experimental


class ReportToTrial(pl.Callback):
    def __init__(self, objective: str, trial: Any | None):
        self.objective = objective
        self.trial = trial  # an optuna.Trial on rank 0 of a sweep job; None elsewhere
        self.pruned_at: int | None = None
        self.last_value: float | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        value = trainer.callback_metrics.get(self.objective)
        if self.trial is not None and value is not None:
            self.last_value = float(value)
            self.trial.report(self.last_value, step=trainer.current_epoch)
            with quiet_experimental():
                prune = self.trial.should_prune()
        if trainer.strategy.broadcast(prune, src=0):
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True


def trial_callback(cfg, settings: SearchSettings | None) -> ReportToTrial | None:
    """The callback for a job the Optuna sweeper launched (hparams_search.trial set); None otherwise.
    Only rank 0 of a multirun job talks to the study: a DDP child, or a run re-run from a trial's
    saved config (bigmodel reproduce), joins the pruning decision without reporting anything."""
    if settings is None or settings.trial is None:
        return None
    return ReportToTrial(str(cfg.objective), open_trial(settings, cfg.trainer.get("max_epochs"), cfg.get("run_name")))


def open_trial(settings: SearchSettings, max_epochs: int | None, run_name: str | None = None):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from bigmodel_cli.process_state import is_rank_zero

    if not (is_rank_zero() and HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN):
        return None
    import optuna

    sweep_dir = HydraConfig.get().sweep.dir
    settings = settings.named(run_name, sweep_dir)
    storage = open_storage(settings, settings.storage_url(sweep_dir), retry=False)
    study = optuna.load_study(study_name=settings.study_name, storage=storage, pruner=make_pruner(settings, max_epochs))
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(settings.study_name), settings.trial
    )
    return optuna.Trial(study, trial_id)
