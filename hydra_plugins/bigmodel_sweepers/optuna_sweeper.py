"""bigmodel's Optuna sweeper: Hydra's `-m` with an Optuna study, on Optuna's public ask-and-tell API.

Every worker running the same command against the same study shares its work. A worker loops: fail
the trials whose heartbeat went stale (Optuna queues them again with the same parameters), ask the
study for a trial, launch its job through Hydra's launcher in the directory numbered by the trial,
keep the trial's heartbeat while it runs, and tell the study how it ended (COMPLETE with its
objective, PRUNED, or FAIL). Asking stops once the study holds n_trials trials that count (finished,
running or queued; a stale trial replaced by its retry does not count); the last worker waits for the
others' trials, so a killed worker's trial is retried rather than left RUNNING.

Re-running the command resumes the study (load_if_exists); the study is named after the sweep
(hparams_search.study_name, else run_name, else the sweep directory's name). Each trial's sampler is
seeded from (seed, trial number): a search is reproducible from its seed, yet a resumed search or a
second worker never replays earlier draws.

Pre-emption (SIGTERM/SIGUSR1/SIGUSR2 while a trial trains: training saves last.ckpt and stops with
TrainingInterrupted): the trial is told FAIL, marked pre-empted (it does not count), queued again
with the same parameters, and the worker stops with one line, since its allocation is ending. Ctrl-C
queues the trial it interrupted the same way and records "interrupted" in its run.json.

The password of a storage URL is masked in the config this sweeper saves and passes to its jobs
(bigmodel_cli.runs.secrets); the real URL stays in this process and its children's environment.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from bigmodel_cli.atomic import write_text
from bigmodel_cli.errors import UserError, choices_text
from bigmodel_cli.runs import secrets
from bigmodel_cli.runs.failures import FailFast, Preempted
from bigmodel_cli.runs.index import RUN_FILE, read_json
from bigmodel_cli.runs.pruning import TrialPruned
from bigmodel_cli.runs.records import mark_interrupted
from bigmodel_cli.search import space as search_space
from bigmodel_cli.search.study import (
    SearchSettings,
    make_pruner,
    make_sampler,
    open_storage,
    quiet_experimental,
    trial_seed,
)

log = logging.getLogger(__name__)

# Set on a trial a worker asked for although the others had just reached n_trials (two workers
# asking in the same instant); it is told FAIL at once and does not count.
SURPLUS = "bigmodel_surplus"
# Set on a trial once its worker recorded its first heartbeat. Optuna never finds a RUNNING trial
# stale that has no heartbeat (asked by something else, or its worker killed in that instant): such a
# trial older than the grace period is failed and queued again here.
BEATING = "bigmodel_heartbeat"
# Set on a trial whose job was pre-empted (a stop signal while training): it does not count; a copy
# with the same parameters is queued (user attrs RERUN_OF, its number, and PREEMPTED_RUN, its run dir).
PREEMPTED = "bigmodel_preempted"
RERUN_OF = "bigmodel_rerun_of"
PREEMPTED_RUN = "bigmodel_preempted_run"
DIRECTIONS = ("maximize", "minimize")
MODES = ("max", "min")
# Python warnings raised in the sweeper itself (Optuna's, e.g. about list choices) go here, in the
# sweep directory, as a job's go to its own log file; the terminal keeps bigmodel's lines.
SWEEP_LOG = "sweep.log"


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        n_trials: int,
        n_jobs: int = 1,
        direction: str = "maximize",
        max_failure_rate: float = 1.0,
        params: dict[str, str] | None = None,
    ):
        self.n_trials = int(n_trials)
        self.n_jobs = max(1, int(n_jobs))
        self.direction = direction
        self.max_failure_rate = float(max_failure_rate)
        self.params = dict(params or {})

    def setup(self, *, hydra_context, task_function, config) -> None:
        secrets.take_storage_credentials(config)  # done by RunRecorder already, unless it could not resolve yet
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.check_direction(config)
        settings = SearchSettings.from_config(config)
        self.named_by_user = settings.study_name is not None
        self.settings = settings.named(config.get("run_name"), config.hydra.sweep.dir)
        self.seed = config.get("seed")
        self.max_epochs = config.trainer.get("max_epochs") if "trainer" in config else None

    def check_direction(self, config) -> None:
        if self.direction in DIRECTIONS:
            return
        mode = config.get("objective_mode")
        if mode not in MODES:
            raise UserError(
                f"objective_mode={mode} is not known; valid choices: {choices_text(MODES)} (fix: objective_mode=max)"
            )
        raise UserError(
            f"hydra.sweeper.direction={self.direction} is not known; valid choices: {choices_text(DIRECTIONS)} "
            f"(fix: leave it to objective_mode=max|min, or hydra.sweeper.direction=maximize)"
        )

    def sweep(self, arguments: list[str]) -> None:
        with WarningsToLog() as caught:
            space = search_space.parse(self.params, arguments)
            self.mask_storage(space)
            sweep_dir = Path(self.config.hydra.sweep.dir)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            caught.to(sweep_dir / SWEEP_LOG)
            masked = secrets.mask_data(OmegaConf.to_container(self.config, resolve=False))
            write_text(sweep_dir / "multirun.yaml", OmegaConf.to_yaml(OmegaConf.create(masked)))
            self.search(sweep_dir, space)

    def mask_storage(self, space: search_space.SearchSpace) -> None:
        """A storage URL with a password reaches the jobs masked, whatever its spelling (a job
        would otherwise resolve an interpolation or OPTUNA_STORAGE to the real one and save it)."""
        storage = self.settings.storage
        if not storage or secrets.MASK not in str(storage):
            return
        key = secrets.STORAGE_KEY
        space.fixed = [o for o in space.fixed if o.split("=", 1)[0].lstrip("+~") != key]
        space.fixed.append(f"{key}='{storage}'")

    def keep_earlier_study(self, sweep_dir: Path, storage, space: search_space.SearchSpace) -> None:
        """A sweep directory whose jobs reported to another study (started before studies took the
        sweep's name, when every study was 'train') goes on with that study: a new one would number
        its trials from 0 again, into the directories of the earlier trials."""
        import optuna

        if self.named_by_user:
            return
        names = set(optuna.get_all_study_names(storage=storage))
        if self.settings.study_name in names:
            return
        for path in sorted(sweep_dir.glob(f"*/{RUN_FILE}")):
            try:
                earlier = ((read_json(path).get("config") or {}).get("hparams_search") or {}).get("study_name")
            except (OSError, ValueError, AttributeError):
                continue
            if earlier in names:
                print(f"going on with study '{earlier}', which this sweep directory's trials reported to")
                self.settings = replace(self.settings, study_name=earlier)
                space.fixed.append(f"hparams_search.study_name={earlier}")  # the jobs report to it too
                return

    def search(self, sweep_dir: Path, space: search_space.SearchSpace) -> None:
        import optuna

        url = self.settings.storage_url(sweep_dir)
        storage = open_storage(self.settings, url)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # bigmodel prints its own lines per trial
        self.keep_earlier_study(sweep_dir, storage, space)
        study = optuna.create_study(
            study_name=self.settings.study_name,
            storage=storage,
            direction=self.direction,
            load_if_exists=True,
            pruner=make_pruner(self.settings, self.max_epochs),
        )
        if study.direction.name.lower() != self.direction:
            raise UserError(
                f"study '{self.settings.study_name}' in {shown(url)} is set to {study.direction.name.lower()}, "
                f"this search to {self.direction}; fix: objective_mode={study.direction.name.lower()[:3]}, "
                f"or another run_name for a new study"
            )
        check_space(study, space, shown(url))
        worker = Worker(self, study, storage, space)
        worker.announce(shown(url))
        try:
            worker.run()
        finally:
            worker.heartbeat.stop()
        write_results(sweep_dir, study)


class Worker:
    """One process's share of the study."""

    def __init__(self, sweeper: OptunaSweeper, study, storage, space: search_space.SearchSpace):
        self.sweeper = sweeper
        self.study = study
        self.storage = storage
        self.space = space
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.heartbeat = Heartbeat(storage, sweeper.settings.heartbeat_interval)
        self.told: list[str] = []  # this worker's trial states, for max_failure_rate
        self.resume_from: dict[int, str] = {}  # trial number -> the checkpoint its pre-empted run saved

    def counted(self) -> list:
        """The study's trials that count towards n_trials, by number."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        trials = self.study.get_trials(deepcopy=False)
        with quiet_experimental():
            replaced = {n for t in trials for n in RetryHeartbeatStaleTrialCallback.retry_history(t)}
        return [
            t
            for t in trials
            if t.number not in replaced and not t.system_attrs.get(SURPLUS) and not t.system_attrs.get(PREEMPTED)
        ]

    def announce(self, where: str) -> None:
        from optuna.trial import TrialState

        counted = self.counted()
        if not counted:
            return
        finished = sum(t.state.is_finished() for t in counted)
        running = sum(t.state == TrialState.RUNNING for t in counted)
        to_go = max(0, self.sweeper.n_trials - len(counted))
        verb = "resuming" if finished else "joining"  # joining: other workers have started it
        print(
            f"{verb} optuna study '{self.study.study_name}' in {where}: {finished} trial(s) already run"
            + (f", {running} running" if running else "")
            + f", {to_go} to go"
        )

    def run(self) -> None:
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        waiting_noted = False
        while True:
            with quiet_experimental():
                fail_stale_trials(self.study)
            self.requeue(self.orphans())
            batch = self.ask()
            if batch:
                self.launch(batch)
                self.check_failure_rate()
                continue
            running = [t.number for t in self.counted() if t.state == TrialState.RUNNING]
            if not running:
                return
            if not waiting_noted:  # their heartbeats go on, or they are retried here once stale
                print(f"waiting for trial(s) {', '.join(map(str, running))} running in other workers")
                waiting_noted = True
            time.sleep(self.sweeper.settings.heartbeat_interval)

    def ask(self) -> list[tuple[Any, dict[str, Any]]]:
        """Up to n_jobs trials with their sampled parameters."""
        from optuna.trial import TrialState

        batch = []
        for _ in range(self.sweeper.n_jobs):
            counted = self.counted()
            queued = any(t.state == TrialState.WAITING for t in counted)
            if not queued and len(counted) >= self.sweeper.n_trials:
                break
            with warnings.catch_warnings():  # Optuna expects heartbeats with optimize(); this loop keeps them
                warnings.filterwarnings("ignore", "Heartbeat of storage is supposed", UserWarning)
                trial = self.study.ask()
            trial_id = self.trial_id(trial.number)
            self.heartbeat.add(trial_id)
            numbers = [t.number for t in self.counted()]
            if trial.number in numbers and numbers.index(trial.number) >= self.sweeper.n_trials:
                self.storage.set_trial_system_attr(trial_id, SURPLUS, True)
                self.heartbeat.discard(trial_id)
                self.study.tell(trial, state=TrialState.FAIL)
                break
            self.study.sampler = make_sampler(self.sweeper.settings, trial_seed(self.sweeper.seed, trial.number))
            try:
                params = {name: suggest(trial, name, dist) for name, dist in self.space.distributions.items()}
            except ValueError as exc:  # the space changed under a running search (check_space saw it before)
                self.storage.set_trial_system_attr(trial_id, SURPLUS, True)  # not run, not counted
                self.heartbeat.discard(trial_id)
                self.study.tell(trial, state=TrialState.FAIL)
                raise UserError(
                    f"trial {trial.number} cannot take this search space: {exc}; fix: the search space the "
                    f"study '{self.study.study_name}' was started with, or another run_name for a new study"
                ) from None
            preempted_run = trial.user_attrs.get(PREEMPTED_RUN)
            if preempted_run and (Path(preempted_run) / "checkpoints" / "last.ckpt").is_file():
                self.resume_from[trial.number] = str(Path(preempted_run) / "checkpoints" / "last.ckpt")
            batch.append((trial, params))
        return batch

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def launch(self, batch: list[tuple[Any, dict[str, Any]]]) -> None:
        """Launch the batch's jobs, numbered by trial (consecutive numbers go to the launcher together)."""
        from optuna.trial import TrialState

        for group in consecutive(batch):
            overrides = [[*self.space.overrides(params), *self.resumed(trial.number)] for trial, params in group]
            try:
                returns = self.sweeper.launcher.launch(overrides, initial_job_idx=group[0][0].number)
            except Preempted as stop:
                # A stop signal while a trial trained: that trial is queued again (it is not at
                # fault), the rest of the group too, and this worker stops: its allocation is ending.
                failure = stop.args[0]
                for trial, params in group:
                    if trial.number == failure.job_num:
                        self.preempted(trial, params, failure.output_dir)
                self.requeue([trial.number for trial, _ in group if trial.number != failure.job_num])
                raise UserError(
                    f"trial {failure.job_num} was pre-empted ({failure.message().split(';')[0]}); it is queued "
                    f"again with the same parameters and this worker stops (fix: run the same command again "
                    f"to go on with study '{self.study.study_name}')"
                ) from None
            except BaseException as stop:
                # --fail-fast: the trial whose job failed is FAIL (a retry would fail alike); the
                # rest of the group was interrupted (Ctrl-C: its run.json says so), so it is queued again.
                failed = stop.args[0].job_num if isinstance(stop, FailFast) else None
                for trial, _ in group:
                    if trial.number == failed:
                        self.study.tell(trial, state=TrialState.FAIL)
                    elif isinstance(stop, (KeyboardInterrupt, SystemExit)):
                        mark_interrupted(Path(self.sweeper.config.hydra.sweep.dir) / str(trial.number))
                self.requeue([trial.number for trial, _ in group if trial.number != failed])
                raise
            for (trial, _), job in zip(group, returns):
                self.tell(trial, job)

    def resumed(self, number: int) -> list[str]:
        """The trial's own overrides: its number, and for the re-run of a pre-empted trial the
        checkpoint that run saved (ckpt_path: weights, optimizer, epoch), so it goes on from there."""
        ckpt = self.resume_from.pop(number, None)
        return [*([f"ckpt_path='{ckpt}'"] if ckpt else []), f"hparams_search.trial={number}"]

    def tell(self, trial, job) -> None:
        from optuna.trial import TrialState

        self.heartbeat.discard(self.trial_id(trial.number))
        outcome = job.return_value if job.status == JobStatus.COMPLETED else None
        if isinstance(outcome, TrialPruned):
            state, values = TrialState.PRUNED, None
        else:
            try:
                state, values = TrialState.COMPLETE, float(outcome)
            except (TypeError, ValueError):  # a failed job (JobFailure), or no objective in its metrics
                state, values = TrialState.FAIL, None
        self.study.tell(trial, values, state=state)
        self.told.append(state.name)
        log.info(f"trial {trial.number}: {state.name.lower()}" + (f" ({values})" if values is not None else ""))

    def preempted(self, trial, params: dict[str, Any], run_dir: str | None) -> None:
        """Tell a pre-empted trial FAIL, marked so that it does not count, and queue a copy."""
        from optuna.trial import TrialState

        trial_id = self.trial_id(trial.number)
        self.heartbeat.discard(trial_id)
        self.storage.set_trial_system_attr(trial_id, PREEMPTED, True)
        self.study.tell(trial, state=TrialState.FAIL)
        self.told.append("PREEMPTED")
        attrs = {RERUN_OF: trial.number, **({PREEMPTED_RUN: str(run_dir)} if run_dir else {})}
        self.study.enqueue_trial(params, user_attrs=attrs)
        log.info(f"trial {trial.number}: pre-empted, queued again")

    def orphans(self) -> list[int]:
        """RUNNING trials that no worker has ever kept a heartbeat for, older than the grace period."""
        from optuna.trial import TrialState

        grace = timedelta(seconds=self.sweeper.settings.grace_period)
        now = datetime.now()
        return [
            t.number
            for t in self.counted()
            if t.state == TrialState.RUNNING
            and not t.system_attrs.get(BEATING)
            and t.datetime_start is not None
            and now - t.datetime_start > grace
        ]

    def requeue(self, numbers: list[int]) -> None:
        """Fail these RUNNING trials and queue them again with the same parameters, so they are run
        rather than counted (the sweep was interrupted while they ran, or they are orphans)."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        retry = self.storage.get_heartbeat_stale_trial_callback()
        for number in numbers:
            trial_id = self.trial_id(number)
            self.heartbeat.discard(trial_id)
            try:
                self.storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
            except UpdateFinishedTrialError:  # it ended meanwhile, or another worker failed it first
                continue
            with quiet_experimental():
                retry(self.study, self.storage.get_trial(trial_id))

    def check_failure_rate(self) -> None:
        failed = self.told.count("FAIL")
        if self.told and failed / len(self.told) > self.sweeper.max_failure_rate:
            raise UserError(
                f"{failed} of this worker's {len(self.told)} trial(s) failed, more than "
                f"hydra.sweeper.max_failure_rate={self.sweeper.max_failure_rate}; their run.json files "
                f"say why (fix: the failing setting, or hydra.sweeper.max_failure_rate=1.0 to go on)"
            )


def check_space(study, space: search_space.SearchSpace, where: str) -> None:
    """A resumed study must keep each parameter's kind and choices (Optuna cannot sample a changed
    categorical); say which one changed before any trial is asked."""
    from optuna.distributions import CategoricalDistribution, check_distribution_compatibility

    seen: dict[str, Any] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, dist in trial.distributions.items():
            seen.setdefault(name, dist)
    for name, new in space.distributions.items():
        old = seen.get(name)
        if old is None:
            continue
        try:
            check_distribution_compatibility(old, new)
        except ValueError:

            def text(d):
                return (
                    f"choice({', '.join(map(str, d.choices))})" if isinstance(d, CategoricalDistribution) else repr(d)
                )

            raise UserError(
                f"{name}: study '{study.study_name}' in {where} searched {text(old)}, this search {text(new)}; "
                f"a study cannot change a parameter's choices (fix: {name}={text(old)} to go on with it, or "
                f"another run_name or hparams_search.study_name for a new study)"
            ) from None


def suggest(trial, name: str, dist) -> Any:
    """The trial's value for one parameter (a queued retry's trial already has it)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def consecutive(batch: list) -> list[list]:
    """The batch cut where trial numbers jump (another worker took the numbers between)."""
    groups: list[list] = []
    for item in batch:
        if groups and item[0].number == groups[-1][-1][0].number + 1:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


class WarningsToLog:
    """Python warnings raised while the sweeper works go to a file (`to`, once the sweep directory
    exists; those raised before wait for it) instead of the terminal. A job run in this process
    sends its own warnings to its log file meanwhile (logging.captureWarnings) and puts this back."""

    def __init__(self):
        self.pending: list[str] = []
        self.path: Path | None = None
        self.catcher = warnings.catch_warnings()

    def __enter__(self) -> WarningsToLog:
        self.catcher.__enter__()
        warnings.showwarning = self.show
        return self

    def __exit__(self, *exc) -> None:
        self.catcher.__exit__(*exc)
        self.flush()

    def show(self, message, category, filename, lineno, file=None, line=None) -> None:
        self.pending.append(warnings.formatwarning(message, category, filename, lineno, line))
        self.flush()

    def to(self, path: Path) -> None:
        self.path = path
        self.flush()

    def flush(self) -> None:
        if self.path is not None and self.pending:
            with open(self.path, "a") as out:
                out.writelines(self.pending)
            self.pending.clear()


class Heartbeat:
    """Records a heartbeat for each trial this worker runs, every `interval` seconds, from a thread
    (training holds the main thread); the first beat is recorded when the trial is added."""

    def __init__(self, storage, interval: int):
        self.storage = storage
        self.interval = interval
        self.trial_ids: set[int] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.beat, name="optuna-heartbeat", daemon=True)
        self.thread.start()

    def add(self, trial_id: int) -> None:
        self.storage.record_heartbeat(trial_id)
        self.storage.set_trial_system_attr(trial_id, BEATING, True)
        with self.lock:
            self.trial_ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        with self.lock:
            self.trial_ids.discard(trial_id)

    def beat(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.lock:
                trial_ids = list(self.trial_ids)
            for trial_id in trial_ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as exc:  # noqa: BLE001 - a missed beat is retried next interval
                    log.warning(f"heartbeat of trial id {trial_id} not recorded: {exc}")

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)


def shown(url: str) -> str:
    """The storage URL without its password, for the terminal."""
    return secrets.masked_url(url)


def write_results(sweep_dir: Path, study) -> None:
    """optimization_results.yaml (as Hydra's Optuna sweeper wrote it) and a line with the best trial."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        print("no trial of the study has completed yet")
        return
    best = study.best_trial
    results = {"name": "optuna", "best_trial": best.number, "best_params": best.params, "best_value": best.value}
    write_text(sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results)))
    params = " ".join(f"{k}={v}" for k, v in best.params.items())
    print(f"best trial: {best.number} ({best.value:.4g}) {params}")
