"""Hydra's Optuna sweeper, made resumable.

The stock sweeper already reopens a study that exists in its storage (load_if_exists), but it would
run all n_trials again and number its jobs from 0, overwriting the finished jobs' directories.
This one counts the trials already in the study: it runs only the ones still to go and numbers the
new jobs after the old ones. An interrupted trial (left RUNNING) is marked FAIL and replaced.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

log = logging.getLogger(__name__)


class ResumableOptunaSweeper(OptunaSweeper):
    def sweep(self, arguments: List[str]) -> None:
        impl = self.sweeper
        if isinstance(impl.storage, str) and impl.storage.startswith("sqlite:///"):
            Path(impl.storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if impl.storage:
            import optuna

            try:
                study = optuna.load_study(study_name=impl.study_name, storage=impl.storage)
            except KeyError:  # no such study yet: a fresh search
                study = None
            if study is not None:
                trials = study.get_trials(deepcopy=False)
                for trial in trials:
                    if trial.state == optuna.trial.TrialState.RUNNING:
                        study._storage.set_trial_state(trial._trial_id, optuna.trial.TrialState.FAIL)
                finished = sum(t.state != optuna.trial.TrialState.RUNNING for t in trials)
                log.info(f"Resuming study {impl.study_name}: {len(trials)} trial(s) already there "
                         f"({finished} finished); running {max(0, impl.n_trials - len(trials))} more")
                print(f"resuming optuna study '{impl.study_name}' in {impl.storage}: {len(trials)} trial(s) "
                      f"already run, {max(0, impl.n_trials - len(trials))} to go")
                impl.job_idx = len(trials)
                impl.n_trials = max(0, impl.n_trials - len(trials))
        return impl.sweep(arguments)
