"""Making Hydra's run directories and Lightning's multi-process launchers agree.

Three ways a process can be one rank of many:
- Lightning's DDP launcher (trainer.devices=N) re-runs our command line for ranks 1..N-1. Those
  children must run exactly the parent's *job* (not its whole sweep when the parent is a multirun)
  in the parent's run directory, and write no Hydra files of their own. The parent exports its job
  in BIGMODEL_DDP_JOB before training; a child rebuilds its argv from it.
- torchrun / SLURM start every rank themselves. Only rank zero keeps the real run directory; the
  others get a scratch one (checkpoint paths are broadcast from rank zero by Lightning).
Imports nothing heavy: it runs before Hydra, at every start.
"""

from __future__ import annotations

import json
import os
import tempfile

JOB_ENV = "BIGMODEL_DDP_JOB"
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "JSM_NAMESPACE_RANK")
# Lightning's launcher writes these into the launching process's own environment; left there, the
# next job of a sweep would think its ranks already exist (LOCAL_RANK set) and wait for them forever.
LAUNCHER_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", JOB_ENV)
_job_start_environment: dict[str, str | None] = {}


def global_rank() -> int:
    """This process's rank as its launcher (torchrun, SLURM, Lightning) declared it; 0 if none."""
    for key in RANK_VARIABLES:
        if key in os.environ:
            return int(os.environ[key])
    return 0


def is_rank_zero() -> bool:
    return global_rank() == 0


def rank_argv(args: list[str], subcommands) -> list[str]:
    """The command line this process should run, given how it was launched."""
    job = os.environ.get(JOB_ENV)
    if job and "LOCAL_RANK" in os.environ and (not args or args[0] not in subcommands):
        spec = json.loads(job)  # a child of Lightning's DDP launcher: the parent's job, in its run dir
        return [spec["command"], *spec["config_source"], *spec["overrides"], f'hydra.run.dir="{spec["run_dir"]}"',
                "hydra.output_subdir=null", "hydra/job_logging=stdout"]
    if not is_rank_zero() and args and args[0] in subcommands and not job:
        scratch = os.path.join(tempfile.gettempdir(), f"bigmodel-rank{global_rank()}-{os.getpid()}")
        return [*args, f'hydra.run.dir="{scratch}"', "hydra.output_subdir=null", "hydra/job_logging=stdout"]
    return args


def export_job(command: str, config_source: list[str]) -> None:
    """Called by the launching process when a job starts: what its DDP children must run (the
    subcommand, where its primary config comes from, and the job's overrides)."""
    from hydra.core.hydra_config import HydraConfig

    _job_start_environment.clear()
    _job_start_environment.update({name: os.environ.get(name) for name in LAUNCHER_VARIABLES})
    if "LOCAL_RANK" in os.environ or not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    os.environ[JOB_ENV] = json.dumps({"command": command, "config_source": config_source,
                                      "overrides": list(hydra_cfg.overrides.task),
                                      "run_dir": hydra_cfg.runtime.output_dir})


def release() -> None:
    """After a job: put the launcher's environment back as it was when the job started, and tear
    down the process group, so the next job of a sweep starts its own ranks afresh."""
    for name, value in _job_start_environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    import sys

    if "torch" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def global_batch_line(batch_size: int, trainer, full_batch: bool = False) -> str:
    """How the per-device batch adds up across devices, nodes and gradient accumulation; under
    full-batch gd (one step per epoch) the step's batch is the whole training split."""
    devices, nodes = trainer.num_devices, trainer.num_nodes
    spread = (f"{batch_size} per device x {devices} device{'s' if devices > 1 else ''} "
              f"x {nodes} node{'s' if nodes > 1 else ''}")
    if full_batch:
        return f"full batch: one optimizer step per epoch on the whole training split, read in batches of {spread}"
    accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
    line = f"global batch {batch_size * devices * nodes * accumulate} = {spread}"
    return line + (f" x {accumulate} accumulated batches" if accumulate > 1 else "")
