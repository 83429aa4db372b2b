"""A job's hand-off to its DDP ranks, whoever starts them.

Lightning's launcher (trainer.devices=N) re-runs our command line for ranks 1..N-1. Those children
must run exactly the parent's *job* (not its whole sweep when the parent is a multirun) in the
parent's run directory. The parent exports its job in BIGMODEL_DDP_JOB before training
(`export_job`); a child rebuilds its argv from it (cli/argv). After the job, `release` puts the
launcher's environment back, so the next job of a sweep starts its own ranks.

An external launcher (torchrun, srun) starts every rank itself, each with the user's command line.
Rank 0 decides the run directory; the others learn it through a rendezvous store on the launcher's
MASTER_ADDR:MASTER_PORT (`Rendezvous`): torchrun's agent store, which outlives a worker restart, or,
under SLURM, a store rank 0 opens on the port Lightning's SLURM environment picks (the process
group later shares it; rank 0 keeps it open at exit until every rank has read it, so a rank that
starts late after rank 0 failed learns that at once). A torchrun restart (TORCHELASTIC_RESTART_COUNT
> 0) continues the run its first attempt announced, from its newest checkpoint. Under srun, a
multirun whose job asks for one device is a set of independent workers (each SLURM task runs its
own trials), not DDP ranks.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bigmodel_cli import process_state
from bigmodel_cli.errors import UserError
from bigmodel_cli.process_state import (
    DDP_JOB_ENV,
    JOB_START_ENVIRONMENT,
    LAUNCHER_VARIABLES,
    RENDEZVOUS_TIMEOUT_ENV,
    WORKER_ENV,
)

RUN_DIR_KEY = "bigmodel/run_dir"
SWEEP_DIR_KEY = "bigmodel/sweep_dir"
DEFAULT_RENDEZVOUS_TIMEOUT_S = 300
ENDED = "\0ended"  # what rank 0 leaves under the key when it stops before announcing a directory
MULTIRUN = ("-m", "--multirun")


@dataclass(frozen=True)
class Launch:
    """How an external launcher started this process."""

    kind: str  # "torchrun" or "slurm"
    rank: int
    world: int
    restart: int  # torchrun's restart count (0: the first attempt)


def external_launch() -> Launch | None:
    """The torchrun or srun launch of more than one process this process belongs to, else None
    (also None in Lightning's own DDP children and in independent SLURM workers)."""
    env = os.environ
    if env.get(DDP_JOB_ENV) and "LOCAL_RANK" in env or WORKER_ENV in env:
        return None
    if "TORCHELASTIC_RUN_ID" in env and int(env.get("WORLD_SIZE", "1")) > 1:
        return Launch(
            "torchrun", int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("TORCHELASTIC_RESTART_COUNT", "0"))
        )
    interactive = env.get("SLURM_JOB_NAME") in ("bash", "interactive")  # Lightning ignores SLURM then
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1 and not interactive:
        return Launch("slurm", int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), 0)
    return None


def asked_processes(args: list[str]) -> int | None:
    """trainer.devices x trainer.num_nodes as given on the command line (None where not given)."""
    found: dict[str, int] = {}
    for arg in args:
        key, _, value = arg.lstrip("+").partition("=")
        if key in ("trainer.devices", "trainer.num_nodes") and value.isdigit():
            found[key] = int(value)
    if "trainer.devices" not in found:
        return None
    return found["trainer.devices"] * found.get("trainer.num_nodes", 1)


def rank_arguments(args: list[str]) -> list[str]:
    """The command line for a process an external launcher started (cli/argv, step 1): a SLURM
    worker runs it as given; a DDP rank other than 0 runs in rank 0's run directory, writing no
    files of its own; a torchrun restart continues the run of its first attempt."""
    launch = external_launch()
    if launch is None:
        return args
    multirun = any(a in MULTIRUN for a in args)
    if launch.kind == "slurm" and multirun and asked_processes(args) in (None, 1):
        become_worker()
        return args
    settle_slurm_tasks_per_node()
    # A sweep's DDP ranks run its jobs in the same order: they share rank 0's sweep directory.
    rendezvous = Rendezvous.open(launch, SWEEP_DIR_KEY if multirun else RUN_DIR_KEY)
    announced = rendezvous.receive() if launch.rank > 0 else rendezvous.announced() if launch.restart > 0 else None
    where = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if announced is not None and launch.restart > 0 and not multirun:
        args = continue_run(args, announced, launch)
    if launch.rank > 0:
        return [*args, f'{where}="{announced}"', *NO_HYDRA_FILES]
    if announced is not None and not any(a.startswith("resume=") for a in args):
        return [*args, f'{where}="{announced}"']
    return args


# Hydra settings for a process that shares its run directory with rank zero: no files of its own.
NO_HYDRA_FILES = ["hydra.output_subdir=null", "hydra/job_logging=stdout"]


def continue_run(args: list[str], run_dir: str, launch: Launch) -> list[str]:
    """A restarted torchrun worker continues the run its first attempt announced: from its newest
    checkpoint with the run's saved config (resume=<run dir>, which holds every override already;
    group overrides such as accelerator=cpu would not apply to it), else afresh in the same directory."""
    rest = [a for a in args if not a.lstrip("+").startswith(("resume=", "hydra.run.dir="))]
    checkpoints = Path(run_dir) / "checkpoints"
    resumable = any(checkpoints.glob("*.ckpt")) and (Path(run_dir) / ".hydra" / "config.yaml").is_file()
    if launch.rank == 0:
        how = "from its newest checkpoint" if resumable else "afresh (no checkpoint yet)"
        print(f"torchrun restart {launch.restart}: continuing {run_dir} {how}", flush=True)
    flags = [a for a in rest if a in ("--verbose", "--trust-checkpoint")]  # bigmodel's own
    if not resumable:
        return rest
    # Rank zero leaves the saved config as it is (the restart changes nothing in it): the other
    # ranks compose from that file at the same moment, and would read it half-rewritten.
    return [*flags, f"resume={run_dir}", *(["hydra.output_subdir=null"] if launch.rank == 0 else [])]


def become_worker() -> None:
    """This SLURM task is one of several independent workers: it is rank 0 of its own jobs, and
    Lightning must not wire the tasks into one DDP world (it detects SLURM by SLURM_NTASKS)."""
    os.environ[WORKER_ENV] = f"{os.environ.get('SLURM_PROCID', '0')}/{os.environ.get('SLURM_NTASKS', '1')}"
    os.environ.pop("SLURM_NTASKS", None)


def settle_slurm_tasks_per_node() -> None:
    """`srun --ntasks=N` sets SLURM_TASKS_PER_NODE (e.g. "2" or "2(x3)") but not the
    SLURM_NTASKS_PER_NODE Lightning requires; with the same count on every node they are the same."""
    if "SLURM_NTASKS_PER_NODE" in os.environ or "SLURM_PROCID" not in os.environ:
        return
    per_node = os.environ.get("SLURM_TASKS_PER_NODE", "")
    match = re.fullmatch(r"(\d+)(?:\(x\d+\))?", per_node)
    if match is None:
        raise UserError(
            f"srun spread its tasks unevenly over the nodes (SLURM_TASKS_PER_NODE={per_node}); each node needs "
            f"the same number of DDP ranks; fix: srun --nodes=<n> --ntasks-per-node=<devices per node>"
        )
    os.environ["SLURM_NTASKS_PER_NODE"] = match.group(1)


def check_world(cfg) -> None:
    """Under srun, the job's trainer.devices x trainer.num_nodes must be SLURM's task count (one
    task per device); otherwise the tasks would train independent copies without a word."""
    if os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive") or WORKER_ENV in os.environ:
        return
    tasks = int(os.environ.get("SLURM_NTASKS", "1"))
    if tasks <= 1 or "TORCHELASTIC_RUN_ID" in os.environ or os.environ.get(DDP_JOB_ENV) and "LOCAL_RANK" in os.environ:
        return
    trainer = cfg.get("trainer") or {}
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    if not isinstance(devices, int) or not isinstance(nodes, int) or devices * nodes != tasks:
        raise UserError(
            f"srun started {tasks} tasks but the job asks for trainer.devices={devices} x trainer.num_nodes={nodes}; "
            f"each task is one DDP rank, so they would train {tasks} independent copies; fix: "
            f"trainer.devices={os.environ.get('SLURM_NTASKS_PER_NODE', tasks)} trainer.num_nodes={os.environ.get('SLURM_NNODES', 1)} "
            f"(one task per device), or srun --ntasks=1, or -m to run the tasks as independent sweep workers"
        )


def rendezvous_timeout() -> float:
    return float(os.environ.get(RENDEZVOUS_TIMEOUT_ENV) or DEFAULT_RENDEZVOUS_TIMEOUT_S)


class Rendezvous:
    """Rank 0's run directory, announced to the other ranks on the launcher's MASTER_ADDR:MASTER_PORT."""

    opened: Rendezvous | None = None  # this process's (rank 0 hosts the SLURM store while it lives)

    def __init__(self, store, launch: Launch, where: str, key: str, deadline: float):
        self.store, self.launch, self.where, self.key = store, launch, where, key
        self.deadline = deadline  # time.monotonic() after which no rank is still trying to connect

    @classmethod
    def open(cls, launch: Launch, key: str = RUN_DIR_KEY) -> Rendezvous:
        from datetime import timedelta

        import torch.distributed as dist

        timeout = timedelta(seconds=rendezvous_timeout())
        if launch.kind == "torchrun":  # the agent's store: every worker is a client
            host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
            master = False
        else:  # Lightning's SLURM address and port (it exports them); rank 0 serves, shared with the process group
            from lightning_fabric.plugins.environments import SLURMEnvironment

            environment = SLURMEnvironment()
            host, port = environment.main_address, environment.main_port
            master = launch.rank == 0
        try:
            store = dist.TCPStore(
                host, port, is_master=master, multi_tenant=True, wait_for_workers=False, timeout=timeout
            )
        except (RuntimeError, OSError) as exc:
            raise UserError(
                f"rank {launch.rank} could not reach the {launch.kind} rendezvous at {host}:{port} within "
                f"{timeout.total_seconds():.0f}s ({str(exc).splitlines()[0]}); fix: start every rank with the same "
                f"command, or raise {RENDEZVOUS_TIMEOUT_ENV}"
            ) from None
        cls.opened = cls(store, launch, f"{host}:{port}", key, time.monotonic() + timeout.total_seconds())
        process_state.LAUNCH_STORE.update(store=store, groups=0)
        if master:
            atexit.register(cls.opened.see_off)
        return cls.opened

    def announced(self) -> str | None:
        if not self.store.check([self.key]):
            return None
        return self.store.get(self.key).decode()

    def receive(self) -> str:
        """Rank 0's run directory, once it announces it; then this rank checks in, so that rank 0,
        which may be about to stop, keeps its store open until every rank has read it."""
        try:
            announced = self.store.get(self.key).decode()
        except RuntimeError as exc:
            raise UserError(
                f"rank {self.launch.rank} waited {rendezvous_timeout():.0f}s at {self.where} for rank 0 to "
                f"announce its run directory ({str(exc).splitlines()[0]}); rank 0 failed or never started; "
                f"fix: see rank 0's error, or raise {RENDEZVOUS_TIMEOUT_ENV}"
            ) from None
        self.store.set(self.read_key(self.launch.rank), "1")
        if announced == ENDED:
            raise UserError(
                f"rank {self.launch.rank}: rank 0 stopped before its run began, so this rank stops too; "
                f"fix: see rank 0's error above"
            )
        return announced

    def read_key(self, rank: int) -> str:
        return f"{self.key}/read_by/{rank}"

    def see_off(self) -> None:
        """Rank 0's last step where it hosts the store (SLURM): a rank that starts late (a slow node,
        a loaded one) would otherwise retry a closed port for the whole timeout after rank 0 failed.
        It leaves ENDED if it announced nothing, and waits, up to the connection deadline, until
        every rank has read the key."""
        from datetime import timedelta

        keys = [self.read_key(rank) for rank in range(1, self.launch.world)]
        try:
            self.announce(ENDED)  # where it announced nothing
            left = self.deadline - time.monotonic()
            if self.store.check(keys) or left <= 0:
                return
            print(
                f"rank 0 waits up to {left:.0f}s for the other ranks to read the rendezvous at {self.where}",
                file=sys.stderr,
            )
            self.store.wait(keys, timedelta(seconds=left))
        except RuntimeError:  # the deadline passed (no rank is still connecting), or the store is gone
            pass

    def announce(self, directory: str) -> None:
        if self.launch.rank == 0 and self.announced() is None:
            self.store.set(self.key, directory)


def export_job(command: str, config_source: list[str]) -> None:
    """Called by the launching process when a job starts: what its DDP children must run (the
    subcommand, where its primary config comes from, and the job's overrides); under torchrun or
    srun, rank 0 announces its run directory to the other ranks."""
    from hydra.core.hydra_config import HydraConfig

    JOB_START_ENVIRONMENT.clear()
    JOB_START_ENVIRONMENT.update({name: os.environ.get(name) for name in LAUNCHER_VARIABLES})
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if Rendezvous.opened is not None:
        sweep = Rendezvous.opened.key == SWEEP_DIR_KEY
        Rendezvous.opened.announce(os.path.abspath(hydra_cfg.sweep.dir if sweep else hydra_cfg.runtime.output_dir))
    if "LOCAL_RANK" in os.environ:
        return
    os.environ[DDP_JOB_ENV] = json.dumps(
        {
            "command": command,
            "config_source": config_source,
            "overrides": list(hydra_cfg.overrides.task),
            "run_dir": hydra_cfg.runtime.output_dir,
        }
    )


# What gloo and NCCL say when another rank died or stopped answering (its connection closed, or the
# process group's timeout passed).
PEER_LOSS = (
    "connection closed by peer",
    "connection reset by peer",
    "broken pipe",
    "timed out waiting",
    "application timeout caused pair closure",  # gloo, on the rank whose peer froze
    "watchdog caught collective operation timeout",
    "nccl communicator was aborted",
)


def peer_lost(error: BaseException, run_dir: str = "<run dir>") -> UserError | None:
    """The one line for a collective that failed because another rank died, else None."""
    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist

    text = str(error)
    lost = isinstance(error, getattr(dist, "DistError", ())) or any(p in text.lower() for p in PEER_LOSS)
    if not lost or not isinstance(error, RuntimeError):
        return None
    detail = re.sub(r"^\[[^\]]*\]\s*", "", text.strip().splitlines()[0]).split(". ")[0]
    rank = process_state.global_rank()
    return UserError(
        f"rank {rank} lost the other ranks of this run ({detail}); the run stopped and is marked failed; fix: see the "
        f"other ranks' output for why one died, then continue it with `bigmodel train resume={run_dir}` "
        f"(torchrun --max-restarts=N does this by itself)"
    )


def release() -> None:
    """After a job: put the launcher's environment back as it was when the job started, and tear
    down the process group, so the next job of a sweep starts its own ranks afresh."""
    process_state.restore(JOB_START_ENVIRONMENT)
    if "torch" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
