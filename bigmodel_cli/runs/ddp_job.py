"""A job's hand-off to the ranks Lightning's DDP launcher starts for it.

Lightning's launcher (trainer.devices=N) re-runs our command line for ranks 1..N-1. Those children
must run exactly the parent's *job* (not its whole sweep when the parent is a multirun) in the
parent's run directory. The parent exports its job in BIGMODEL_DDP_JOB before training
(`export_job`); a child rebuilds its argv from it (cli/argv). After the job, `release` puts the
launcher's environment back, so the next job of a sweep starts its own ranks.
"""

from __future__ import annotations

import json
import os
import sys

from bigmodel_cli import process_state
from bigmodel_cli.process_state import DDP_JOB_ENV, JOB_START_ENVIRONMENT, LAUNCHER_VARIABLES


def export_job(command: str, config_source: list[str]) -> None:
    """Called by the launching process when a job starts: what its DDP children must run (the
    subcommand, where its primary config comes from, and the job's overrides)."""
    from hydra.core.hydra_config import HydraConfig

    JOB_START_ENVIRONMENT.clear()
    JOB_START_ENVIRONMENT.update({name: os.environ.get(name) for name in LAUNCHER_VARIABLES})
    if "LOCAL_RANK" in os.environ or not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    os.environ[DDP_JOB_ENV] = json.dumps(
        {
            "command": command,
            "config_source": config_source,
            "overrides": list(hydra_cfg.overrides.task),
            "run_dir": hydra_cfg.runtime.output_dir,
        }
    )


def release() -> None:
    """After a job: put the launcher's environment back as it was when the job started, and tear
    down the process group, so the next job of a sweep starts its own ranks afresh."""
    process_state.restore(JOB_START_ENVIRONMENT)
    if "torch" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
