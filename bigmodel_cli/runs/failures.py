"""Failed jobs, caught inside the Hydra task function instead of escaping it.

Catching there means a failed job is still recorded (run.json status "failed", by RunRecorder),
a multirun sweep goes on with its other jobs, and the CLI decides how to report: one line for a
user error, a traceback for anything else, a list of failed jobs after a sweep.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field

from bigmodel_cli.errors import UserError, print_error
from bigmodel_cli.process_state import FAILED
from bigmodel_cli.runs.secrets import mask_text


@dataclass
class JobFailure:
    error: Exception
    overrides: list[str] = field(default_factory=list)
    job_num: int | None = None  # set in multirun
    output_dir: str | None = None

    @property
    def is_user_error(self) -> bool:
        return isinstance(self.error, UserError)

    def message(self) -> str:
        text = str(self.error) if self.is_user_error else f"{type(self.error).__name__}: {self.error}"
        return mask_text(text)  # run.json, the terminal

    def __str__(self) -> str:  # what a sweeper shows when it cannot use this as an objective value
        return f"failed job: {self.message()}"

    def __float__(self) -> float:
        # An Optuna trial that failed is marked FAIL in the study (the sweeper catches this) rather
        # than given a made-up score; the search goes on with the other trials.
        raise ValueError(str(self))


class FailFast(BaseException):
    """Raised after a failed job is recorded when fail_fast is set. A BaseException, so it passes
    through Hydra's per-job `except Exception` and stops the launcher before the next job."""


class Preempted(BaseException):
    """Raised after an Optuna trial's job is recorded when a stop signal interrupted its training
    (TrainingInterrupted): the sweeper queues the trial again and stops this worker."""


class Refused(BaseException):
    """A UserError found by a Hydra callback before anything is written (Hydra turns a callback's
    Exception into a warning, so it travels as a BaseException; the CLI prints its one line)."""


def is_interruption(error: BaseException) -> bool:
    from bigmodel_cli.callbacks.guards import TrainingInterrupted

    return isinstance(error, TrainingInterrupted)


def record(error: Exception, show_trace: bool) -> JobFailure:
    """Remember a failed job; print its traceback now (in context) unless it is a user error."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    failure = JobFailure(error)
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        failure.overrides = list(hydra_cfg.overrides.task)
        failure.output_dir = hydra_cfg.runtime.output_dir
        if hydra_cfg.mode == RunMode.MULTIRUN:
            failure.job_num = hydra_cfg.job.num
    if show_trace or not failure.is_user_error:
        traceback.print_exception(error)
    FAILED.append(failure)
    return failure


def stop_if_fail_fast(config) -> None:
    """Called once a failed job's run.json is written: with fail_fast, stop the sweep here."""
    from hydra.types import RunMode

    if config.get("fail_fast") and config.hydra.mode == RunMode.MULTIRUN and FAILED:
        raise FailFast(FAILED[-1])


def report(failed: list[JobFailure]) -> int:
    """The exit code after the app returned: 0, or one line per failed job (2 if all were user errors)."""
    if not failed:
        return 0
    code = 2 if all(f.is_user_error for f in failed) else 1
    if len(failed) == 1 and failed[0].job_num is None:
        return print_error(failed[0].message(), code=code)
    for failure in failed:
        print_error(f"job {failure.job_num} ({' '.join(failure.overrides)}) failed: {failure.message()}", code=code)
    return print_error(f"{len(failed)} job(s) failed; their run.json files record the errors", code=code)
