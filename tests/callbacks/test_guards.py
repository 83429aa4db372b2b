"""The guards train adds: stop on a non-finite loss, save a checkpoint on SIGTERM/SIGUSR1 first."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from bigmodel_cli.callbacks.guards import NonFiniteLoss, TrainingInterrupted
from bigmodel_cli.commands import train
from bigmodel_cli.lightning_modules.classifier import ClassificationModule
from tests.conftest import TWO_EPOCHS


def wrap_training_step(monkeypatch, after) -> None:
    """Make ClassificationModule.training_step return after(module, batch_idx, loss)."""
    original = ClassificationModule.training_step
    monkeypatch.setattr(
        ClassificationModule,
        "training_step",
        lambda self, batch, batch_idx: after(self, batch_idx, original(self, batch, batch_idx)),
    )


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(compose_cfg, tmp_path, monkeypatch):
    wrap_training_step(
        monkeypatch, after=lambda self, batch_idx, loss: loss * float("nan") if self.current_epoch >= 1 else loss
    )
    with compose_cfg("train", [*TWO_EPOCHS, "accelerator=cpu"]) as cfg:
        with pytest.raises(NonFiniteLoss, match=r"loss is nan at step 3 \(epoch 1\).*last\.ckpt \(not overwritten\)"):
            train.run(cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and last["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_a_deferred_check_never_lets_a_non_finite_stretch_reach_a_checkpoint(compose_cfg, tmp_path, monkeypatch):
    """On an accelerator the loss is checked on the device and read every few steps (no host sync
    per step); the read before each save stops the run before a NaN step's weights are written.
    Here on the CPU with every=5 and last.ckpt after every step."""
    from functools import partial

    from bigmodel_cli.callbacks import guards
    from bigmodel_cli.training import assembly

    monkeypatch.setattr(assembly, "NonFiniteLossGuard", partial(guards.NonFiniteLossGuard, every=5))
    wrap_training_step(
        monkeypatch, after=lambda self, batch_idx, loss: loss * float("nan") if self.current_epoch >= 1 else loss
    )
    overrides = [*TWO_EPOCHS, "accelerator=cpu", "callbacks.last_checkpoint.every_n_steps=1"]
    with compose_cfg("train", overrides) as cfg:
        with pytest.raises(NonFiniteLoss, match=r"became NaN or infinite between step 3 and step 4 .*not overwritten"):
            train.run(cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3, "a step after the NaN loss was saved"
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_stop_signal_saves_a_checkpoint_first(signum, compose_cfg, tmp_path, monkeypatch):
    def send(self, batch_idx, loss):
        if self.current_epoch == 1 and batch_idx == 1:
            os.kill(os.getpid(), signum)
        return loss

    wrap_training_step(monkeypatch, after=send)
    before = signal.getsignal(signum)
    with compose_cfg("train", [*TWO_EPOCHS, "accelerator=cpu"]) as cfg:
        with pytest.raises(TrainingInterrupted, match=f"received {signal.Signals(signum).name} at step 5"):
            train.run(cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 5 and last["epoch"] == 1
    assert signal.getsignal(signum) == before, "the signal handler was not put back after training"


def test_a_cpu_fit_stops_asking_nvml_every_optimizer_step(compose_cfg, monkeypatch):
    """Lightning's NVML-based CUDA check costs an NVML load per Adam step; where NVML finds no GPU
    the fit uses the runtime's cached answer instead, and the setting is put back after."""
    if torch.cuda.is_available():
        pytest.skip("a CPU fit on a machine with a GPU keeps the NVML check")
    nvml_loads = []
    original = torch.cuda._raw_device_count_nvml
    monkeypatch.setattr(torch.cuda, "_raw_device_count_nvml", lambda: nvml_loads.append(1) or original())
    during = []
    wrap_training_step(monkeypatch, after=lambda self, batch_idx, loss: during.append(len(nvml_loads)) or loss)
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"  # set by Lightning's import
    with compose_cfg("train", [*TWO_EPOCHS, "accelerator=cpu", "optimizer=adam"]) as cfg:
        train.run(cfg)
    assert len(during) > 3 and during[-1] == during[0], "NVML was asked again during training"
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"
