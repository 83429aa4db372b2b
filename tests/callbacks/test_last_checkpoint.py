"""last.ckpt is the newest state of the run, whatever the validation schedule."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import FAST


@pytest.mark.parametrize("every", [1, 3])
def test_every_epoch_ends_with_last_ckpt_even_without_validation(every, cli, in_tmp_cwd):
    """With trainer.check_val_every_n_epoch=3, Lightning's own rule would save only after the
    third epoch's validation: a run of 2 epochs would have no last.ckpt to resume from."""
    limits = [o for o in FAST if not o.startswith("trainer.max_epochs")]
    code, _, err = cli(
        "train", *limits, "accelerator=cpu", "trainer.max_epochs=2", f"trainer.check_val_every_n_epoch={every}",
        "run_name=run",
    )  # fmt: skip
    assert code == 0, err
    last = torch.load(in_tmp_cwd / "outputs/train/run/checkpoints/last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (1, 6)  # the second epoch's 3rd batch: the run's end
