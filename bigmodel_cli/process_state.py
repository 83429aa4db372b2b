"""Every piece of state that crosses a process or a Hydra boundary, in one place.

Across processes, through the environment (a child process inherits it):

| variable                  | set by                              | read by                                    |
|---------------------------|-------------------------------------|--------------------------------------------|
| BIGMODEL_DDP_JOB          | runs/ddp_job.export_job, per job    | cli/argv: a DDP child rebuilds its argv    |
| BIGMODEL_TRUST_CHECKPOINT | cli/main (--trust-checkpoint)       | checkpoints/files: unsafe unpickling is ok |
| BIGMODEL_SUBCOMMAND       | commands/app while Hydra runs       | runs/records: the command in run.json      |
| HYDRA_FULL_ERROR=1        | commands/app while Hydra runs       | Hydra: errors reach us, we print them      |
| RANK, SLURM_PROCID, ...   | torchrun, SLURM, Lightning          | global_rank: who writes run files          |
| BIGMODEL_WORKER           | runs/ddp_job: a SLURM task of a     | global_rank: 0, the task is not a DDP rank |
|                           | multirun asking for one device      |                                            |
| BIGMODEL_RENDEZVOUS_TIMEOUT_S | the user (default 300)          | runs/ddp_job: ranks > 0 wait for rank 0    |

Within one process, between Hydra's callbacks (runs/records.RunRecorder) and the task function
(commands/app): SKIPPED and FAILED below. JOB_START_ENVIRONMENT holds the launcher variables as a
job found them, so the next job of a sweep starts its DDP ranks afresh (runs/ddp_job).

Imports nothing heavy: it is read at every start, before Hydra.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

DDP_JOB_ENV = "BIGMODEL_DDP_JOB"
TRUST_ENV = "BIGMODEL_TRUST_CHECKPOINT"
SUBCOMMAND_ENV = "BIGMODEL_SUBCOMMAND"
HYDRA_FULL_ERROR_ENV = "HYDRA_FULL_ERROR"
# "<task>/<tasks>": this process is one of several independent sweep workers srun started, not a DDP rank.
WORKER_ENV = "BIGMODEL_WORKER"
# Seconds the ranks of a torchrun/srun launch wait for rank 0 to announce its run directory.
RENDEZVOUS_TIMEOUT_ENV = "BIGMODEL_RENDEZVOUS_TIMEOUT_S"

RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "JSM_NAMESPACE_RANK")
# Lightning's launcher writes these into the launching process's own environment; left there, the
# next job of a sweep would think its ranks already exist (LOCAL_RANK set) and wait for them forever.
LAUNCHER_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", DDP_JOB_ENV)

# Run directory -> the completed run.json of the same config, for jobs skip_completed skips.
SKIPPED: dict[str, dict] = {}
# Failed jobs of this invocation (runs/failures.JobFailure), in order: reported after Hydra returns.
FAILED: list[Any] = []
# LAUNCHER_VARIABLES as they were when the current job started.
JOB_START_ENVIRONMENT: dict[str, str | None] = {}
# Under torchrun/srun: "store", the rendezvous store of the launch (runs/ddp_job), which also holds
# every process group this process makes (training/strategies), and "groups", how many it made.
LAUNCH_STORE: dict[str, Any] = {}


def global_rank() -> int:
    """This process's rank as its launcher (torchrun, SLURM, Lightning) declared it; 0 if none. A
    sweep worker srun started is rank 0 of its own jobs (its SLURM_PROCID numbers the worker)."""
    worker = WORKER_ENV in os.environ
    for key in RANK_VARIABLES:
        if worker and key.startswith("SLURM_"):
            continue
        if key in os.environ:
            return int(os.environ[key])
    return 0


def is_rank_zero() -> bool:
    return global_rank() == 0


def trusted() -> bool:
    """--trust-checkpoint was given: checkpoints may be unpickled with arbitrary objects."""
    return os.environ.get(TRUST_ENV) == "1"


def is_ddp_child() -> bool:
    """A process Lightning's DDP launcher started for ranks 1..N-1 of a bigmodel job."""
    return bool(os.environ.get(DDP_JOB_ENV)) and "LOCAL_RANK" in os.environ


@contextmanager
def environment(**variables: str):
    """Set environment variables for a block (child processes inherit them), then restore them."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        restore(saved)


def restore(saved: dict[str, str | None]) -> None:
    """Put variables back as `saved` recorded them (None: it was not set)."""
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
