"""`launcher=submitit_slurm`: Hydra's submitit SLURM launcher, with the job's resources taken from
the trainer and an sbatch refusal as one line.

What each job asks SLURM for follows the job's own config: `trainer.num_nodes` nodes,
`trainer.devices` tasks per node (one task per device: Lightning's SLURM environment maps each
task to one device), and as many GPUs per node only with `accelerator=gpu`; CPU partitions need no
GPU request at all. `hydra.launcher.gpus_per_node` set by hand wins.
"""

from __future__ import annotations

from typing import Any

from omegaconf import open_dict

from bigmodel_cli.errors import UserError

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
except ImportError:  # the launcher group's submitit options need hydra-submitit-launcher
    SubmititSlurmLauncher = None

GPU_ACCELERATORS = ("gpu", "cuda")
RESOURCES = ("partition", "nodes", "tasks_per_node", "cpus_per_task", "gpus_per_node", "mem_gb", "timeout_min")


def gpus_for(trainer) -> int | None:
    """GPUs per node for a trainer config: its devices with accelerator=gpu, else none."""
    if str(trainer.get("accelerator")) not in GPU_ACCELERATORS:
        return None
    devices = trainer.get("devices")
    if not isinstance(devices, int) or devices < 1:
        raise UserError(
            f"launcher=submitit_slurm asks SLURM for trainer.devices GPUs per node, but trainer.devices={devices}; "
            f"fix: trainer.devices=<GPUs per node>, e.g. trainer.devices=4"
        )
    return devices


def refusal(error: BaseException, params: dict[str, Any]) -> UserError | None:
    """sbatch's refusal of the sweep's jobs as one line, else None."""
    text = str(error)
    reasons = [line.split("error:", 1)[1].strip() for line in text.splitlines() if "sbatch: error:" in line]
    if not reasons:
        return None
    asked = " ".join(f"{k}={params[k]}" for k in RESOURCES if params.get(k) is not None)
    return UserError(
        f"sbatch refused the sweep's jobs: {'; '.join(reasons)} (asked: {asked}); fix: ask for what a partition has "
        f"(`sinfo -o '%P %D %c %m %G'` lists CPUs, memory in MB and GPUs per node): hydra.launcher.partition=<name>, "
        f"hydra.launcher.cpus_per_task, hydra.launcher.mem_gb, or fewer trainer.devices / trainer.num_nodes"
    )


def partitions(name: str | None) -> list[tuple[str, int, int]] | None:
    """(partition, CPUs per node, memory per node in MB) as sinfo reports them, for the named
    partition or the default one; None where sinfo cannot tell."""
    import shutil
    import subprocess

    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P|%c|%m"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = []
    for line in out.splitlines():
        part, cpus, memory = (line.split("|") + ["", "", ""])[:3]
        if name is None and not part.endswith("*") or name is not None and part.rstrip("*") != name:
            continue
        try:
            rows.append((part.rstrip("*"), int(cpus.rstrip("+")), int(memory.rstrip("+"))))
        except ValueError:
            continue
    return rows or None  # an unknown partition: sbatch says so itself


def check_fits(params: dict[str, Any]) -> None:
    """A job that asks a node for more CPUs or memory than any node of its partition has would pend
    forever (Reason=PartitionConfig) where sbatch does not refuse it: say so before submitting."""
    nodes = partitions(params.get("partition"))
    if not nodes:
        return
    cpus = int(params.get("cpus_per_task") or 1) * int(params.get("tasks_per_node") or 1)
    memory = float(params.get("mem_gb") or 0) * 1024
    if any(cpus <= have_cpus and memory <= have_memory for _, have_cpus, have_memory in nodes):
        return
    part, have_cpus, have_memory = max(nodes, key=lambda row: (row[1], row[2]))
    raise UserError(
        f"no node of partition {part} fits one job: it asks per node for {cpus} CPUs "
        f"(cpus_per_task={params.get('cpus_per_task')} x tasks_per_node={params.get('tasks_per_node')}) and "
        f"{params.get('mem_gb')} GB, the largest node has {have_cpus} CPUs and {have_memory / 1024:.1f} GB, so it "
        f"would pend forever; fix: ask for at most that (hydra.launcher.cpus_per_task, hydra.launcher.mem_gb; "
        f"the defaults are 1 and 4), fewer trainer.devices, or hydra.launcher.partition=<a bigger one> (sinfo lists them)"
    )


if SubmititSlurmLauncher is not None:

    class SlurmLauncher(SubmititSlurmLauncher):
        def setup(self, *, hydra_context, task_function, config) -> None:
            super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
            if self.params.get("gpus_per_node") is None and "trainer" in config:
                self.params["gpus_per_node"] = gpus_for(config.trainer)
            with open_dict(config):  # what the jobs were asked with, in each job's saved hydra config
                config.hydra.launcher.gpus_per_node = self.params["gpus_per_node"]

        def launch(self, job_overrides, initial_job_idx):
            check_fits(self.params)
            try:
                return super().launch(job_overrides, initial_job_idx)
            except Exception as exc:  # submitit's FailedJobError carries sbatch's own lines
                line = refusal(exc, self.params)
                if line is None:
                    raise
                raise line from None
