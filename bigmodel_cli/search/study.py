"""An Optuna study as `hparams_search` describes it, opened the same way by the sweeper and by its jobs.

Storage: a SQLite file in the sweep directory by default, or any database URL
(`hparams_search.storage=postgresql://user@host/db`, or OPTUNA_STORAGE in the environment; a password
in it is masked everywhere it would be written, runs/secrets). Both are Optuna's RDBStorage, the storage that
has heartbeats: a worker records one for each trial it runs, and a trial whose heartbeat is older than
the grace period (its worker was killed) is failed and queued again with the same parameters.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from bigmodel_cli.config.contracts import keys_group_settings
from bigmodel_cli.errors import UserError, choices_text
from bigmodel_cli.runs.secrets import mask_text, masked_url, unmask

DEFAULT_STORAGE_FILE = "optuna.db"
PRUNERS = ("none", "median", "hyperband", "successive_halving")
SAMPLERS = ("tpe", "random")
# SQLite: wait this long for another worker's write lock instead of failing with "database is locked".
SQLITE_LOCK_TIMEOUT_S = 120
SCHEMA_RACE_ATTEMPTS = 5


# (key, smallest valid value, the default to suggest)
WHOLE_NUMBERS = (
    ("heartbeat_interval", 1, 10),
    ("grace_period", 1, 60),
    ("max_retry", 0, 3),
    ("n_startup_trials", 0, 5),
    ("pruner_startup_trials", 0, 3),
    ("pruner_warmup_epochs", 0, 1),
)


@dataclass(frozen=True)
class SearchSettings:
    """The `hparams_search` node of a run's config: every key is set by conf/hparams_search/optuna.yaml,
    which explains each (no defaults here to drift from it)."""

    study_name: str | None  # None: named after the sweep (named())
    storage: str | None
    sampler: str
    n_startup_trials: int
    pruner: str
    pruner_startup_trials: int
    pruner_warmup_epochs: int
    heartbeat_interval: int
    grace_period: int
    max_retry: int
    trial: int | None

    @classmethod
    def from_config(cls, config) -> SearchSettings:
        node = keys_group_settings(config, "hparams_search", cls)
        missing = [f.name for f in fields(cls) if f.name not in node]
        if missing:
            raise UserError(
                f"hparams_search.{missing[0]} is not set; fix: pick the search with hparams_search=optuna "
                f"(conf/hparams_search/optuna.yaml sets every key)"
            )
        settings = cls(**node)
        settings.check()
        return settings

    def named(self, run_name: str | None, sweep_dir: str | Path) -> SearchSettings:
        """These settings with the study's name: hparams_search.study_name, else the sweep's run_name,
        else its directory's name (so two sweeps on one database never share a study by accident)."""
        if self.study_name:
            return self
        return replace(self, study_name=str(run_name) if run_name else Path(sweep_dir).name)

    def check(self) -> None:
        for key, least, fix in WHOLE_NUMBERS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise UserError(
                    f"hparams_search.{key}={value} is not valid: it must be a whole number of at least {least} "
                    f"(fix: hparams_search.{key}={fix})"
                )
        for key, value, valid in (("pruner", self.pruner, PRUNERS), ("sampler", self.sampler, SAMPLERS)):
            if value not in valid:
                raise UserError(
                    f"hparams_search.{key}={value} is not known; valid choices: {choices_text(valid)} "
                    f"(fix: hparams_search.{key}={valid[0]})"
                )
        if self.grace_period <= self.heartbeat_interval:
            raise UserError(
                f"hparams_search.grace_period={self.grace_period} must be longer than hparams_search."
                f"heartbeat_interval={self.heartbeat_interval} (fix: hparams_search.grace_period="
                f"{6 * self.heartbeat_interval})"
            )

    def storage_url(self, sweep_dir: str | Path) -> str:
        """The database URL: hparams_search.storage (the real one behind a masked password), else
        SQLite in the sweep directory."""
        if self.storage:
            return unmask(str(self.storage))
        return f"sqlite:///{Path(sweep_dir).resolve() / DEFAULT_STORAGE_FILE}"


@contextmanager
def quiet_experimental():
    """Optuna marks heartbeats, stale-trial retry, pruning in ask-and-tell and its matplotlib plots
    experimental; the notice is for Optuna's users, not bigmodel's."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def open_storage(settings: SearchSettings, url: str, retry: bool = True):
    """Optuna's RDBStorage on `url`, with heartbeats and (for the sweeper) stale trials queued again."""
    import optuna
    from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": SQLITE_LOCK_TIMEOUT_S}
    else:
        engine_kwargs["pool_pre_ping"] = True  # a server may drop idle connections during a long trial
    attempts = 0
    while True:
        try:
            with quiet_experimental():
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=settings.heartbeat_interval,
                    grace_period=settings.grace_period,
                    heartbeat_stale_trial_callback=(
                        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=settings.max_retry)
                        if retry
                        else None
                    ),
                )
        except DatabaseError as exc:
            # Workers started together all create the schema of a new database; the losers of that
            # race see a table or row that already exists, and find the schema there when they try again.
            attempts += 1
            raced = isinstance(exc, IntegrityError) or "already exists" in str(exc)
            if not raced or attempts == SCHEMA_RACE_ATTEMPTS:
                raise storage_error(url, exc) from None
            time.sleep(0.5 * attempts)
        except (ArgumentError, ImportError, ValueError) as exc:
            raise storage_error(url, exc) from None


def storage_error(url: str, exc: BaseException) -> UserError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UserError(
        mask_text(
            f"hparams_search.storage={masked_url(url)} cannot be opened: {reason}; fix: a database URL such as "
            f"postgresql://user@host/db (server running, driver installed; the password in PGPASSWORD or "
            f"~/.pgpass) or leave it unset for {DEFAULT_STORAGE_FILE} in the sweep directory"
        )
    )


def make_sampler(settings: SearchSettings, seed: int | None):
    import optuna

    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.n_startup_trials)


def make_pruner(settings: SearchSettings, max_epochs: int | None):
    """The pruner by name; steps are epochs (a job reports its objective after every validation)."""
    import optuna

    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings.pruner_startup_trials, n_warmup_steps=settings.pruner_warmup_epochs
        )
    if settings.pruner == "hyperband":
        top = max_epochs if max_epochs and max_epochs > 0 else "auto"
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=top, reduction_factor=3)
    if settings.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def trial_seed(seed: int | None, trial_number: int) -> int | None:
    """The sampler's seed for one trial: fixed by (seed, trial number), so a search is reproducible
    from its seed, a resumed search draws afresh, and parallel workers never draw alike."""
    if seed is None:
        return None
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(trial_number)]).generate_state(1)[0])
