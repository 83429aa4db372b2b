"""Fault injection for the interruption tests: a real signal at an exact training step, and a
process that forks one `bigmodel` run per request, so each run that is killed costs a fork, not a
new interpreter's 5 s of imports.

`KillAtStep` is an ordinary Lightning callback a test adds to a run's config
(`+callbacks.fault._target_=tests.support.faults.KillAtStep ... allow_targets=[tests.support.]`):
at the end of the batch that reaches `step` it sends `signal` to its own process
(`KillAfterEpochCheckpoint`: right after an epoch's checkpoints are written). SIGKILL ends the
process there and then, without any of Python's or Lightning's clean-up, as the OOM killer or a
dead node would.

`ForkServer` starts `python -m tests.support.faults` once: it imports torch, Lightning and bigmodel
and computes nothing (forking after computation is not safe with OpenMP), then for each request
forks a child that runs `bigmodel <argv>` in the request's directory and reports how it ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint

REPO = Path(__file__).resolve().parents[2]


class KillAtStep(pl.Callback):
    """With `fold` (a cv=K job), only in that fold's run."""

    def __init__(self, step: int, signal: str = "SIGKILL", fold: int | None = None):
        self.step, self.signal, self.fold = int(step), signal, fold

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.fold is not None and getattr(trainer.datamodule, "fold", None) != self.fold:
            return
        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.signal))


class KillAfterEpochCheckpoint(Checkpoint):
    """SIGKILL at the end of `epoch`, after its checkpoints are written and before Lightning logs
    its training row. A Checkpoint subclass: Lightning runs those last, in the order given."""

    def __init__(self, epoch: int):
        self.epoch = int(epoch)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


def fault_overrides(step: int, signal_name: str = "SIGKILL", fold: int | None = None) -> list[str]:
    return [
        "+callbacks.fault._target_=tests.support.faults.KillAtStep",
        f"+callbacks.fault.step={step}",
        f"+callbacks.fault.signal={signal_name}",
        *([f"+callbacks.fault.fold={fold}"] if fold is not None else []),
        "allow_targets=[tests.support.]",
    ]


class ForkServer:
    """One long-lived process that runs `bigmodel` commands in forked children."""

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.faults"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        ready, threads = self.process.stdout.readline().split()
        assert ready == "ready"
        self.threads = int(threads)  # torch's intra-op threads in the forked runs

    def start(self, cwd: Path, argv: list[str]) -> None:
        """Start `bigmodel *argv` in cwd in a forked child (its output in cwd/fork-<n>.log)."""
        self.process.stdin.write(json.dumps({"cwd": str(cwd), "argv": argv}) + "\n")
        self.process.stdin.flush()

    def wait(self) -> int:
        """How the child started last ended: its exit code, or -N for signal N."""
        return int(self.process.stdout.readline())

    def run(self, cwd: Path, argv: list[str]) -> int:
        self.start(cwd, argv)
        return self.wait()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def serve() -> None:
    import torch

    import bigmodel_cli.commands.train  # noqa: F401  (the heavy imports, before any fork)
    from bigmodel_cli.cli.main import main

    print("ready", torch.get_num_threads(), flush=True)
    for count, line in enumerate(sys.stdin):
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os.chdir(request["cwd"])
            log = os.open(f"fork-{count}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            code = 0
            try:
                main(request["argv"])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - the child reports any failure as its exit code
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                if "joblib.externals.loky" in sys.modules:  # a joblib sweep's workers go with the child
                    from joblib.externals.loky import get_reusable_executor

                    get_reusable_executor().shutdown(wait=False, kill_workers=True)
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(code, flush=True)


if __name__ == "__main__":
    serve()
