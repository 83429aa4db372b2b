"""regularizer=swa: the checkpointed weights are the mean of the epoch-end weights from start_epoch
on, with batch-norm statistics of their own; validation and the test see them, not the trained ones."""

from __future__ import annotations

import pytest
import torch

from bigmodel_cli.errors import UserError
from tests.callbacks.test_finetuning import run_keeping_states
from tests.conftest import FAST


def test_swa_checkpoints_and_tests_the_mean_of_the_epoch_end_weights(compose_cfg, monkeypatch):
    with compose_cfg("train", ["regularizer=swa", "trainer.max_epochs=3", "trainer.limit_val_batches=2"]) as cfg:
        _, epochs, _, trainer = run_keeping_states(cfg, monkeypatch)
        checkpoints = trainer.checkpoint_callback.dirpath
    tested = float(trainer.callback_metrics["test/loss"])  # train.run's test of the best checkpoint
    last = torch.load(f"{checkpoints}/last.ckpt", weights_only=True)
    average = {k.removeprefix("backbone."): v for k, v in last["state_dict"].items() if k.startswith("backbone.")}
    trained = {
        k.removeprefix("backbone."): v for k, v in last["current_model_state"].items() if k.startswith("backbone.")
    }
    assert int(last["averaging_state"]["n_averaged"]) == 2  # epochs 1 and 2 (start_epoch=1)
    weights = [k for k in average if k.endswith(("weight", "bias"))]
    for name in weights:  # the weights: the plain mean of epochs 1 and 2's end weights
        assert torch.allclose(average[name], (epochs[1][name] + epochs[2][name]) / 2, atol=1e-6), name
    assert any(not torch.equal(average[k], trained[k]) for k in weights)
    # Batch-norm statistics: computed afresh for the average, neither averaged nor the trained ones.
    means = [k for k in average if k.endswith("running_mean")]
    assert means
    for name in means:
        assert not torch.allclose(average[name], (epochs[1][name] + epochs[2][name]) / 2)
        assert not torch.allclose(average[name], trained[name])
    # The test split saw the best checkpoint's average: its loss is that of the averaged weights.
    best = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    module = trainer.lightning_module
    losses = {}
    for which in ("state_dict", "current_model_state"):
        module.load_state_dict(best[which])
        trainer.test(module, datamodule=trainer.datamodule, verbose=False)
        losses[which] = float(trainer.callback_metrics["test/loss"])
    assert losses["state_dict"] == pytest.approx(tested, rel=1e-6)
    assert losses["current_model_state"] != pytest.approx(tested, rel=1e-6)


def test_two_weight_averages_are_one_line(compose_cfg):
    from bigmodel_cli.commands import train

    with compose_cfg("train", ["regularizer=[ema,swa]", *FAST]) as cfg:
        with pytest.raises(UserError, match="both average the weights, and a run keeps one average; fix: pick one"):
            train.run(cfg)


def test_the_ema_callback_pickles_and_updates_as_torchs_ema():
    # accelerator=ddp_spawn pickles the callbacks for its processes; torch's EMA update is a closure.
    import pickle

    import torch
    from torch.optim.swa_utils import get_ema_avg_fn

    from bigmodel_cli.callbacks.averaging import ExponentialMovingAverage

    callback = pickle.loads(pickle.dumps(ExponentialMovingAverage(decay=0.9)))
    update = callback._kwargs["avg_fn"]
    averaged, current = torch.randn(5), torch.randn(5)
    assert torch.equal(update(averaged, current, 3), get_ema_avg_fn(0.9)(averaged, current, 3))
    assert not torch.equal(update(averaged, current, 3), averaged)
