"""The hand-off between ranks an external launcher starts (runs/ddp_job), without a cluster: the
real srun/torchrun runs are in tests/training/test_clusters.py."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from bigmodel_cli.errors import UserError
from bigmodel_cli.runs import ddp_job

SRUN = {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NAME": "bigmodel", "SLURM_NNODES": "1"}


@pytest.fixture
def srun_env(monkeypatch):
    for name in ("SLURM_NTASKS_PER_NODE", "TORCHELASTIC_RUN_ID", "BIGMODEL_WORKER", "BIGMODEL_DDP_JOB"):
        monkeypatch.setenv(name, "")  # recorded, so what the code under test sets is undone too
        monkeypatch.delenv(name)
    for name, value in SRUN.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_srun_ntasks_gets_the_tasks_per_node_lightning_wants(srun_env):
    srun_env.setenv("SLURM_TASKS_PER_NODE", "2")
    ddp_job.settle_slurm_tasks_per_node()
    import os

    assert os.environ["SLURM_NTASKS_PER_NODE"] == "2"
    srun_env.delenv("SLURM_NTASKS_PER_NODE")
    srun_env.setenv("SLURM_TASKS_PER_NODE", "2,1")
    with pytest.raises(UserError, match="unevenly.*--ntasks-per-node"):
        ddp_job.settle_slurm_tasks_per_node()


def test_a_task_count_other_than_the_devices_is_one_line(srun_env):
    srun_env.setenv("SLURM_NTASKS_PER_NODE", "2")
    with pytest.raises(UserError, match=r"srun started 2 tasks .* trainer.devices=1 .*fix: trainer.devices=2"):
        ddp_job.check_world(OmegaConf.create({"trainer": {"devices": 1, "num_nodes": 1}}))
    ddp_job.check_world(OmegaConf.create({"trainer": {"devices": 2, "num_nodes": 1}}))  # one task per device


def test_what_the_command_line_asks_for():
    assert ddp_job.asked_processes(["-m", "trainer.devices=2", "trainer.num_nodes=2"]) == 4
    assert ddp_job.asked_processes(["-m", "hparams_search=optuna"]) is None


def test_a_lost_peer_is_one_line():
    import torch  # noqa: F401 - peer_lost looks only where torch is loaded

    gloo = RuntimeError(
        "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:36736. "
        "This is typically caused by a remote worker crashing. GLHF!"
    )
    line = str(ddp_job.peer_lost(gloo, "/runs/a"))
    assert line.startswith("rank 0 lost the other ranks of this run (Connection closed by peer [127.0.0.1]:36736)")
    assert "bigmodel train resume=/runs/a" in line and "GLHF" not in line
    assert ddp_job.peer_lost(ValueError("Connection closed by peer")) is None
    assert ddp_job.peer_lost(RuntimeError("shapes do not match")) is None
