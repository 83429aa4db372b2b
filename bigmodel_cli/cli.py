"""`bigmodel <subcommand> [hydra overrides...]`: pick the subcommand, hand the rest to Hydra.

Imports no torch or Lightning: `bigmodel --help` and `bigmodel train --cfg job` stay fast. The
subcommand's task module (which does import them) is loaded only when a job actually runs.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from importlib import import_module

from bigmodel_cli import distributed, failures
from bigmodel_cli.errors import UserError, choices_text, hydra_message_to_line, run_dir_message_to_line

# subcommand -> (primary config in conf/, task module, one-line summary)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("train", "bigmodel_cli.tasks.train", "fit on train, validate every epoch, test the best checkpoint"),
    "validate": ("validate", "bigmodel_cli.tasks.evaluate", "evaluate a checkpoint on the validation split"),
    "test": ("test", "bigmodel_cli.tasks.evaluate", "evaluate a checkpoint on the test split"),
    "predict": ("predict", "bigmodel_cli.tasks.predict", "write class predictions of a checkpoint to predictions.csv"),
    "lr-find": ("lr_find", "bigmodel_cli.tasks.lr_find", "learning-rate range test: suggested optimizer.lr and lr_find.png"),
    "generate": ("generate", "bigmodel_cli.tasks.generate", "sample text from a language-model checkpoint (model=gpt)"),
}

# Subcommands that are not Hydra apps (they read run directories, not the config tree):
# name -> (module with `main(argv: list[str]) -> int`, one-line summary).
TOOLS: dict[str, tuple[str, str]] = {
    "report": ("bigmodel_cli.report", "table, summary.csv/.md and plots of every job in a sweep or runs directory"),
    "reproduce": ("bigmodel_cli.reproduce", "re-run a past run from its saved config; --verify compares the metrics"),
}

# CLI flags that become config values or environment settings (so Hydra never sees them).
FLAG_OVERRIDES = {"--fail-fast": "++fail_fast=true"}

def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args
    args = [a for a in args if a != "--verbose"]
    if not args or args[0] in ("-h", "--help", "help"):
        from bigmodel_cli.help import print_help

        print_help(SUBCOMMANDS, TOOLS)
        return
    if args[0] == "--version":
        from bigmodel_cli import __version__

        print(f"bigmodel {__version__}")
        return
    args = distributed.rank_argv(args, SUBCOMMANDS)  # DDP children and non-zero ranks: see distributed.py
    command, overrides = args[0], args[1:]
    overrides = [FLAG_OVERRIDES.get(a, a) for a in overrides]
    trust = "--trust-checkpoint" in overrides
    overrides = [a for a in overrides if a != "--trust-checkpoint"]
    if trust:  # an environment variable, so Lightning's DDP children inherit it
        from bigmodel_cli.checkpoints import TRUST_ENV

        os.environ[TRUST_ENV] = "1"
    try:
        dispatch(command, overrides, verbose)
    finally:
        if trust:
            os.environ.pop(TRUST_ENV, None)


def dispatch(command: str, overrides: list[str], verbose: bool) -> None:
    if command in TOOLS:
        sys.exit(run_tool(command, overrides, verbose))
    if command not in SUBCOMMANDS:
        fail(f"unknown subcommand '{command}'; valid choices: {choices_text([*SUBCOMMANDS, *TOOLS])} "
             f"(fix: e.g. `bigmodel train`; `bigmodel --help` lists them)")
    sys.exit(run_subcommand(command, overrides, verbose))


def run_tool(command: str, args: list[str], verbose: bool = False) -> int:
    """A non-Hydra subcommand; its UserErrors get the same one-line treatment."""
    try:
        return import_module(TOOLS[command][0]).main(args)
    except UserError as exc:
        return report(str(exc), exc if verbose else None, code=2)


def option_value(args: list[str], *names: str) -> str | None:
    """The value of `--name value` or `--name=value` in args (last one wins), else None."""
    found = None
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                found = args[i + 1]
            elif arg.startswith(name + "="):
                found = arg.split("=", 1)[1]
    return found


def override_value(args: list[str], key: str) -> str | None:
    found = None
    for arg in args:
        if arg.lstrip("+").startswith(key + "="):
            found = arg.split("=", 1)[1]
    return found


def resume_arguments(overrides: list[str]) -> list[str]:
    """resume=<run dir>: refuse a missing run (never a silent fresh start), and take the run's own
    saved config (so the same model and settings continue), unless a config path is given."""
    resume = override_value(overrides, "resume")
    if resume in (None, "", "null", "None", "auto"):
        return overrides
    run = os.path.abspath(resume)
    if not os.path.isfile(os.path.join(run, ".hydra", "config.yaml")):
        raise UserError(f"resume={resume}: no run there (no {resume}/.hydra/config.yaml); fix: give a run "
                        f"directory such as outputs/train/<run>, or resume=auto run_name=<name> to start "
                        f"fresh when there is nothing to resume")
    overrides = [f"resume={run}" if a.lstrip("+").startswith("resume=") else a for a in overrides]
    if option_value(overrides, "--config-path", "-cp") is None:
        overrides = ["--config-path", os.path.join(run, ".hydra"), "--config-name", "config", *overrides]
    return overrides


def saved_config_arguments(overrides: list[str]) -> list[str]:
    """`--config-path <run>/.hydra --config-name config` (Hydra's way of re-running a saved config):
    make the path absolute, and put bigmodel's conf tree on the search path with its hydra settings
    (run directories, run.json), which the saved config.yaml does not carry."""
    from bigmodel_cli.conf_tree import conf_dir

    path = option_value(overrides, "--config-path", "-cp")
    if path is None:
        return overrides
    absolute, out, skip = os.path.abspath(path), [], False
    for arg in overrides:
        if skip:
            out.append(absolute)
            skip = False
        elif arg in ("--config-path", "-cp"):
            out.append(arg)
            skip = True
        elif arg.startswith(("--config-path=", "-cp=")):
            out.append(f"{arg.split('=', 1)[0]}={absolute}")
        else:
            out.append(arg)
    saved = os.path.join(absolute, f"{option_value(out, '--config-name', '-cn') or 'config'}.yaml")
    if os.path.isfile(saved) and "defaults:" not in open(saved).read():
        if not any(a.startswith("hydra.searchpath") for a in out):
            out.append(f"hydra.searchpath=[file://{conf_dir()}]")
        if "+hydra=default" not in out:  # a DDP child's job already carries it
            out.append("+hydra=default")
        # A fixed run_name in the saved config would send this run into the old run's directory.
        if "\nrun_name:" in open(saved).read() and override_value(out, "run_name") is None:
            out.append("run_name=null")
    return out


def config_source_arguments(overrides: list[str]) -> list[str]:
    """The arguments that choose where the primary config comes from (a saved run's .hydra and the
    search path), which Hydra keeps out of the job's task overrides: DDP children need them too."""
    chosen = []
    for names in (("--config-path", "-cp"), ("--config-name", "-cn")):
        value = option_value(overrides, *names)
        if value is not None:
            chosen += [names[0], value]
    return chosen + [a for a in overrides if a.startswith("hydra.searchpath=")]


def run_subcommand(command: str, overrides: list[str], verbose: bool = False) -> int:
    """Run one subcommand as a Hydra app; returns the process exit code."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from bigmodel_cli import runs

    from bigmodel_cli.conf_tree import conf_dir
    from bigmodel_cli.resolvers import register_resolvers

    config_name, task_module, _ = SUBCOMMANDS[command]
    register_resolvers()

    show_trace = verbose or os.environ.get("HYDRA_FULL_ERROR") == "1"

    try:
        overrides = saved_config_arguments(resume_arguments(overrides))
    except UserError as exc:
        return report(str(exc), exc if show_trace else None, code=2)

    def task_function(cfg):
        done = runs.SKIPPED.get(HydraConfig.get().runtime.output_dir)
        if done is not None:  # skip_completed: the same config already completed in this sweep
            print(f"skipped: the same config completed in {done['run_dir']}")
            return runs.objective_value(cfg, done.get("metrics", {}))
        distributed.export_job(command, config_source_arguments(overrides))
        try:
            return import_module(task_module).main(cfg)
        except Exception as exc:  # recorded, so the run is marked failed and a sweep goes on
            return failures.record(exc, show_trace)
        finally:
            distributed.release()

    app = hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(task_function)
    sys.argv = [sys.argv[0], *overrides]
    # HYDRA_FULL_ERROR: Hydra lets errors reach us, so we decide how to print them.
    try:
        with environment(HYDRA_FULL_ERROR="1", **{runs.SUBCOMMAND_ENV: command}):
            app()
    except failures.FailFast:
        report_failures(failures.RECORDED)
        return report("stopped at the first failed job (fail_fast); the jobs after it did not run", None, code=1)
    except UserError as exc:
        return report(str(exc), exc if show_trace else None, code=2)
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        line = hydra_message_to_line(exc) or run_dir_message_to_line(exc)
        if line is not None:
            return report(line, exc if show_trace else None, code=2)
        return report(f"{type(exc).__name__}: {exc}", exc, code=1)
    return report_failures(failures.RECORDED)


@contextmanager
def environment(**variables: str):
    """Set environment variables for the app (DDP children inherit them), then restore them."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def report_failures(failed: list[failures.JobFailure]) -> int:
    """Exit code after the app returned: 0, or one line per failed job (2 if all were user errors)."""
    if not failed:
        return 0
    code = 2 if all(f.is_user_error for f in failed) else 1
    if len(failed) == 1 and failed[0].job_num is None:
        return report(failed[0].message(), None, code)
    for failure in failed:
        report(f"job {failure.job_num} ({' '.join(failure.overrides)}) failed: {failure.message()}", None, code)
    return report(f"{len(failed)} job(s) failed; their run.json files record the errors", None, code)


def report(line: str, exc: BaseException | None, code: int) -> int:
    if exc is not None:
        import traceback

        traceback.print_exception(exc)
    from rich.console import Console
    from rich.text import Text

    # The message is user text (paths, list overrides like regularizer=[l2,dropout]): never markup.
    Console(stderr=True, highlight=False, soft_wrap=True).print(Text.assemble(("error:", "bold red"), " ", line))
    return code


def fail(line: str) -> None:
    sys.exit(report(line, None, code=2))
