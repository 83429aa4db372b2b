"""Hydra's Optuna sweeper, made resumable.

The stock sweeper already reopens a study that exists in its storage (load_if_exists), but it would
run all n_trials again, number its jobs from 0 (overwriting the finished jobs' directories), and
draw its trials with a sampler seeded exactly as the first time, so a resumed search replays the
parameters of the first trials. This one, on resume:

- counts only the trials that really finished (COMPLETE, PRUNED, or FAIL because their job failed)
  towards n_trials; a trial left RUNNING by a killed search is marked FAIL (and remembered as
  interrupted, so later resumes do not count it either) and replaced by a new one;
- numbers the new jobs after every trial already in the study;
- rebuilds the sampler from its config with a seed derived from (seed, trials in the study), so a
  resumed search is still reproducible but never repeats the draws of an earlier session.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

log = logging.getLogger(__name__)

# Set (as a system attribute) on the trials this sweeper marks FAIL because a killed search left them RUNNING.
INTERRUPTED = "bigmodel_interrupted"


def resumed_seed(seed: int, trials_in_study: int) -> int:
    """The sampler seed of a search resumed with `trials_in_study` trials already in its study: the
    same for the same (seed, count), different from the seed and from other counts."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(trials_in_study)]).generate_state(1)[0])


class ResumableOptunaSweeper(OptunaSweeper):
    def sweep(self, arguments: list[str]) -> None:
        impl = self.sweeper
        if isinstance(impl.storage, str) and impl.storage.startswith("sqlite:///"):
            Path(impl.storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if impl.storage:
            import optuna

            try:
                study = optuna.load_study(study_name=impl.study_name, storage=impl.storage)
            except KeyError:  # no such study yet: a fresh search
                study = None
            if study is not None and study.get_trials(deepcopy=False):
                self._resume(study)
        return impl.sweep(arguments)

    def _resume(self, study) -> None:
        from optuna.trial import TrialState

        impl = self.sweeper
        trials = study.get_trials(deepcopy=False)
        interrupted = [t for t in trials if t.state == TrialState.RUNNING]
        for trial in interrupted:
            study._storage.set_trial_system_attr(trial._trial_id, INTERRUPTED, True)
            study._storage.set_trial_state(trial._trial_id, TrialState.FAIL)
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)  # (the interrupted are RUNNING here)
        done = sum(t.state in finished and not t.system_attrs.get(INTERRUPTED) for t in trials)
        to_go = max(0, impl.n_trials - done)
        seed_note = self._reseed(len(trials))
        log.info(
            f"Resuming study {impl.study_name}: {len(trials)} trial(s) there, {done} finished; "
            f"running {to_go} more{seed_note}"
        )
        print(
            f"resuming optuna study '{impl.study_name}' in {impl.storage}: {done} trial(s) already run, "
            f"{to_go} to go"
            + (f"; {len(interrupted)} interrupted trial(s) marked FAIL and replaced" if interrupted else "")
            + seed_note
        )
        impl.job_idx = len(trials)  # after every job directory the study's trials may have
        impl.n_trials = to_go

    def _reseed(self, trials_in_study: int) -> str:
        """Rebuild the sampler with a seed of its own for this session; returns a note saying so."""
        from hydra.utils import instantiate

        impl = self.sweeper
        config = getattr(impl, "config", None)
        sampler_cfg = config.hydra.sweeper.get("sampler") if config is not None else None
        if sampler_cfg is None or sampler_cfg.get("seed") is None:  # unseeded (random anyway) or no seed at all
            return ""
        seed = resumed_seed(sampler_cfg.seed, trials_in_study)
        impl.sampler = instantiate(sampler_cfg, seed=seed)
        return f" (sampler seed {seed}, from seed {sampler_cfg.seed} and {trials_in_study} trial(s))"
