"""Run one Hydra subcommand: compose its primary config with the overrides, run its task function
for the job (or for every job of a sweep), and turn what went wrong into the exit code and lines.

A job's exception is caught inside the task function (runs/failures), so the job is recorded as
failed and a sweep goes on; what escapes Hydra itself is a composition or run-directory error.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from importlib import import_module

from bigmodel_cli import process_state
from bigmodel_cli.commands import SUBCOMMANDS
from bigmodel_cli.config.catalogue import conf_dir, searching
from bigmodel_cli.config.composition_errors import hydra_message_to_line
from bigmodel_cli.config.resolvers import register_resolvers
from bigmodel_cli.config.source import config_source_arguments, hydra_arguments, mode_is_unset, search_dirs
from bigmodel_cli.errors import UserError, print_error
from bigmodel_cli.process_state import HYDRA_FULL_ERROR_ENV, SUBCOMMAND_ENV, environment, is_rank_zero
from bigmodel_cli.runs import ddp_job, failures
from bigmodel_cli.runs.dir_errors import run_dir_message_to_line
from bigmodel_cli.runs.pruning import TrialPruned
from bigmodel_cli.runs.records import mark_interrupted, objective_value


def run_subcommand(command: str, overrides: list[str], verbose: bool = False) -> int:
    """Run one subcommand as a Hydra app; returns the process exit code."""
    register_resolvers()
    show_trace = verbose or os.environ.get(HYDRA_FULL_ERROR_ENV) == "1"
    try:
        overrides = hydra_arguments(overrides)
    except UserError as exc:
        return print_error(str(exc), exc if show_trace else None)
    # The user's config dirs, with a saved run's own (hydra_arguments): for composition errors here,
    # and in each job (a launcher's worker process too: the task function carries them) for validation.
    dirs = search_dirs(overrides)
    with searching(dirs):
        return run_app(command, overrides, dirs, show_trace)


@contextmanager
def known_mode(overrides: list[str]):
    """Hydra composes the whole config once only to read hydra.mode (Hydra.get_mode), then again for
    the run: about 0.1 s of every start-up. Where the mode is certain to be unset, say so at once;
    Hydra then runs the job, or the sweep under -m, exactly as it would with its own answer."""
    from hydra._internal.hydra import Hydra

    if not mode_is_unset(overrides):
        yield
        return
    get_mode = Hydra.get_mode
    Hydra.get_mode = lambda self, config_name, overrides: None
    try:
        yield
    finally:
        Hydra.get_mode = get_mode


def run_app(command: str, overrides: list[str], dirs: list[str], show_trace: bool) -> int:
    """Compose and run the jobs, with the command line Hydra is to see (run_subcommand)."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    config_name, task_module, _ = SUBCOMMANDS[command]

    def task_function(cfg):
        done = process_state.SKIPPED.get(HydraConfig.get().runtime.output_dir)
        if done is not None:  # skip_completed: the same config already completed in this sweep
            print(f"skipped: the same config completed in {done['run_dir']}")
            return objective_value(cfg, done.get("metrics", {}))
        ddp_job.export_job(command, config_source_arguments(overrides))
        # Warnings (third-party deprecations, Lightning's tips) become log records: the job's log
        # file keeps them and the console filter (bigmodel_cli.console) keeps them off the terminal.
        logging.captureWarnings(True)
        try:
            with searching(dirs):
                return import_module(task_module).main(cfg)
        except TrialPruned as pruned:  # an outcome for the sweeper, not a failure
            return pruned
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C (Lightning makes it a SystemExit): no on_job_end
            if is_rank_zero():
                mark_interrupted(HydraConfig.get().runtime.output_dir)
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, so the run is marked failed and a sweep goes on
            return failures.record(exc, show_trace)
        finally:
            logging.captureWarnings(False)
            ddp_job.release()

    app = hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(task_function)
    sys.argv = [sys.argv[0], *overrides]
    process_state.FAILED.clear()
    # HYDRA_FULL_ERROR: Hydra lets errors reach us, so we decide how to print them.
    try:
        with environment(**{HYDRA_FULL_ERROR_ENV: "1", SUBCOMMAND_ENV: command}), known_mode(overrides):
            app()
    except failures.Refused as refused:  # a UserError from a Hydra callback, before anything is written
        return print_error(str(refused.args[0]), refused.args[0] if show_trace else None)
    except failures.FailFast:
        failures.report(process_state.FAILED)
        return print_error("stopped at the first failed job (fail_fast); the jobs after it did not run", code=1)
    except UserError as exc:
        return print_error(str(exc), exc if show_trace else None)
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        line = hydra_message_to_line(exc) or run_dir_message_to_line(exc)
        if line is not None:
            return print_error(line, exc if show_trace else None)
        return print_error(f"{type(exc).__name__}: {exc}", exc, code=1)
    return failures.report(process_state.FAILED)
