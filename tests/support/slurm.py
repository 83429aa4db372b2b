"""A real one-node SLURM cluster on this host, for tests (and by hand: `python -m tests.support.slurm`).

`Cluster.start(directory)` writes a slurm.conf there (node `localhost` on 127.0.0.1 with the CPUs and
memory `slurmd -C` reports, one default partition `debug`, no accounting, every spool, state, log and
pid file inside `directory`), starts its own munged (with a key generated there), slurmctld and slurmd
in the foreground as child processes, and waits until `sinfo` shows the node idle. `stop()` ends them
by pid. Clients (srun, sbatch, squeue, sinfo, submitit) find it through SLURM_CONF (`cluster.env`).
`start` raises ClusterUnavailable, with the reason, where the daemons are missing or cannot start.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "srun", "sbatch", "sinfo", "squeue")


class ClusterUnavailable(RuntimeError):
    """The daemons are not installed or did not start; the message says why."""


def die_with_parent() -> None:
    """In a daemon's child process before exec: SIGTERM it when the process that started it ends
    (pytest or `python -m tests.support.slurm` killed, even by SIGKILL), so no daemon outlives its
    cluster (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_resources() -> tuple[int, int]:
    """(CPUs, RealMemory in MB) of this host, as `slurmd -C` reports them."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30).stdout
    cpus = re.search(r"\bCPUs=(\d+)", out)
    memory = re.search(r"\bRealMemory=(\d+)", out)
    if not cpus or not memory:
        raise ClusterUnavailable(f"slurmd -C gave no CPUs/RealMemory: {out.strip()[:200]}")
    return int(cpus.group(1)), int(memory.group(1))


def slurm_conf(directory: Path, cpus: int, memory_mb: int, ports: tuple[int, int], munge_socket: Path) -> str:
    d = directory
    return f"""\
ClusterName=bigmodeltest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
JobRequeue=1
InactiveLimit=0
KillWait=5
MinJobAge=60
SlurmdTimeout=60
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class Cluster:
    directory: Path
    conf: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """The environment for clients: this cluster's slurm.conf, and no SLURM_* job variables
        inherited from an enclosing job."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        return {**clean, "SLURM_CONF": str(self.conf)}

    def logs(self) -> str:
        """The daemons' log tails, for a failing test's message."""
        tails = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.directory / name
            if path.is_file():
                tails.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(tails)

    @classmethod
    def start(cls, directory: Path, timeout: float = 60) -> Cluster:
        missing = [name for name in DAEMONS if shutil.which(name) is None]
        if missing:
            raise ClusterUnavailable(
                f"not installed: {', '.join(missing)} (apt-get install slurmctld slurmd slurm-client munge)"
            )
        if os.geteuid() != 0:
            raise ClusterUnavailable("slurmd must run as root to start jobs as the submitting user")
        directory = Path(directory)
        for sub in ("state", "spool", "munge"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / "munge").chmod(0o700)
        key = directory / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        munge_socket = directory / "munge" / "munge.socket"
        cpus, memory = node_resources()
        conf = directory / "slurm.conf"
        conf.write_text(slurm_conf(directory, cpus, memory, (free_port(), free_port()), munge_socket))
        cluster = cls(directory, conf)
        try:
            cluster._spawn(
                "munged",
                [
                    "munged",
                    "--foreground",
                    "--force",
                    f"--key-file={key}",
                    f"--socket={munge_socket}",
                    f"--pid-file={directory}/munge/munged.pid",
                    f"--log-file={directory}/munged.log",
                    f"--seed-file={directory}/munge/munged.seed",
                ],
            )
            cluster._wait(lambda: munge_socket.exists(), timeout, "munged made no socket")
            cluster._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)])
            cluster._spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(conf)])
            cluster._wait(cluster.node_idle, timeout, "the node never became idle in sinfo")
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.directory / f"{name}.out", "w")
        self.processes[name] = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    out = (self.directory / f"{name}.out").read_text(errors="replace")[-500:]
                    raise ClusterUnavailable(f"{name} exited with {process.returncode}: {out}\n{self.logs()}")
            if ready():
                return
            time.sleep(0.5)
        raise ClusterUnavailable(f"{what} within {timeout:.0f}s\n{self.logs()}")

    def node_idle(self) -> bool:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, env=self.env, timeout=20
        ).stdout
        return any(line.split()[1:] == ["idle"] for line in out.splitlines() if line.startswith("localhost"))

    def jobs(self) -> str:
        """squeue's view, for messages."""
        return subprocess.run(
            ["squeue", "-h", "-o", "%i %j %T %r"], capture_output=True, text=True, env=self.env, timeout=20
        ).stdout

    def cancel_all(self) -> None:
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=self.env, timeout=20)

    def stop(self) -> None:
        """End the daemons, newest first, by pid (SIGTERM, then SIGKILL after 10 s)."""
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


if __name__ == "__main__":  # a cluster by hand: prints SLURM_CONF, stops on Ctrl-C
    import sys
    import tempfile

    where = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="bigmodel-slurm-"))
    running = Cluster.start(where)
    print(f"export SLURM_CONF={running.conf}", flush=True)
    for stop in (signal.SIGINT, signal.SIGTERM):  # also when started in the background, where SIGINT is ignored
        signal.signal(stop, signal.default_int_handler)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
