"""The command line, read in one pass: `bigmodel [flags] <subcommand> [overrides...] [flags]`.

The steps, in the order they run (`parse`):
1. A rank process's own command line. A child of Lightning's DDP launcher runs its parent's job
   (BIGMODEL_DDP_JOB); a non-zero rank of torchrun/srun runs in the run directory rank 0 announces,
   a torchrun restart continues its run, a SLURM task of a one-device multirun is a worker (runs/ddp_job).
2. bigmodel's own flags come out: --verbose and --trust-checkpoint become fields of the
   Invocation; --fail-fast becomes the override ++fail_fast=true. Hydra never sees them.
3. The subcommand: help, --version, a tool (report, reproduce) or a Hydra subcommand.
Last, for Hydra subcommands only, config/source.hydra_arguments takes a saved run's config
(resume=<run>, --config-path <run>/.hydra) just before Hydra composes (commands/app).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from bigmodel_cli.process_state import DDP_JOB_ENV, is_ddp_child
from bigmodel_cli.runs.ddp_job import NO_HYDRA_FILES, rank_arguments

# Flags that become config overrides.
FLAG_OVERRIDES = {"--fail-fast": "++fail_fast=true"}
HELP = ("-h", "--help", "help")
# The launch variables of torchrun and srun: only then is there more to decide (runs/ddp_job).
EXTERNAL_LAUNCH = ("TORCHELASTIC_RUN_ID", "SLURM_PROCID")


@dataclass
class Invocation:
    command: str  # a subcommand, a tool, "help" or "version"
    arguments: list[str] = field(default_factory=list)  # the overrides (or a tool's own arguments)
    verbose: bool = False
    trust_checkpoint: bool = False


def parse(argv: list[str], subcommands) -> Invocation:
    args = rank_argv(list(argv), subcommands)
    verbose = "--verbose" in args
    trust = "--trust-checkpoint" in args
    args = [FLAG_OVERRIDES.get(a, a) for a in args if a not in ("--verbose", "--trust-checkpoint")]
    if not args or args[0] in HELP:
        return Invocation("help", args[1:])
    if args[0] == "--version":
        return Invocation("version")
    return Invocation(args[0], args[1:], verbose, trust)


def rank_argv(args: list[str], subcommands) -> list[str]:
    """The command line this process should run, given how it was launched (step 1)."""
    if is_ddp_child() and (not args or args[0] not in subcommands):
        spec = json.loads(os.environ[DDP_JOB_ENV])  # the parent's job, in its run dir
        return [
            spec["command"],
            *spec["config_source"],
            *spec["overrides"],
            f'hydra.run.dir="{spec["run_dir"]}"',
            *NO_HYDRA_FILES,
        ]
    if args and args[0] in subcommands and any(name in os.environ for name in EXTERNAL_LAUNCH):
        return [args[0], *rank_arguments(args[1:])]
    return args
