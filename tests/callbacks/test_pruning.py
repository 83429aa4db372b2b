"""compress=prune: the best checkpoint of a run is pruned to compress.amount (not a denser early
epoch), by a schedule whose steps compound to exactly that; compress=none leaves weights dense."""

from __future__ import annotations

import pytest
import torch

from bigmodel_cli.callbacks.pruning import GradualPruning, cubic_sparsity
from bigmodel_cli.commands import train
from tests.conftest import FAST


def weight_sparsity(checkpoint_path) -> float:
    state = torch.load(checkpoint_path, weights_only=True)["state_dict"]
    assert not any(k.endswith(("_orig", "_mask")) for k in state)  # permanent, loadable anywhere
    weights = [v for k, v in state.items() if k.startswith("backbone.") and k.endswith("weight") and v.ndim > 1]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def test_the_steps_compound_to_the_amount():
    pruning = GradualPruning(0.8, start_epoch=1, end_epoch=4)
    pruning.first, pruning.last = 1, 4
    dense = 1.0
    for epoch in range(6):
        dense *= 1 - pruning.step_amount(epoch)
        if 1 <= epoch <= 4:
            assert 1 - dense == pytest.approx(cubic_sparsity(0.8, epoch, 4))
    assert 1 - dense == pytest.approx(0.8)
    assert pruning.step_amount(0) == pruning.step_amount(5) == 0.0


@pytest.mark.parametrize(("option", "expected"), [("compress=prune", 0.7), ("compress=none", 0.0)])
def test_the_best_checkpoint_is_pruned_to_the_amount(option, expected, compose_cfg, tmp_path):
    epochs = [o for o in FAST if not o.startswith("trainer.max_epochs")]
    overrides = [
        *epochs,
        "trainer.max_epochs=3",
        option,
        "compress.amount=0.7" if option == "compress=prune" else option,
    ]
    with compose_cfg("train", overrides) as cfg:
        train.run(cfg)
    checkpoint = tmp_path / "run" / "checkpoints" / "best.ckpt"
    assert weight_sparsity(checkpoint) == pytest.approx(expected, abs=0.005)
    if option == "compress=prune":
        # Pruned at the start of epoch 1 (end_epoch null: half of 3 epochs): best is epoch 1 or later.
        assert torch.load(checkpoint, weights_only=True)["epoch"] >= 1


def test_pruning_keeps_channels_last_weights_in_channels_last(compose_cfg, tmp_path):
    """torch's global pruning .view()s each weight, which a channels_last convolution weight refuses."""
    epochs = [o for o in FAST if not o.startswith("trainer.max_epochs")]
    with compose_cfg(
        "train", [*epochs, "trainer.max_epochs=3", "compress=prune", "compress.amount=0.7", "channels_last=true"]
    ) as cfg:
        train.run(cfg)
    assert weight_sparsity(tmp_path / "run" / "checkpoints" / "best.ckpt") == pytest.approx(0.7, abs=0.005)
