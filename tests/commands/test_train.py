"""bigmodel train as a whole: deterministic=true makes two runs bitwise identical."""

from __future__ import annotations

import torch

from bigmodel_cli.commands import train
from tests.conftest import TWO_EPOCHS


def test_deterministic_training_is_bitwise_identical(compose_cfg, tmp_path):
    results = []
    for name in ("a", "b"):
        with compose_cfg("train", [*TWO_EPOCHS, "accelerator=cpu", "deterministic=true"], name=name) as cfg:
            assert cfg.trainer.deterministic is True
            metrics = train.run(cfg)
        weights = torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        results.append((metrics, weights))
    (m1, w1), (m2, w2) = results
    assert m1 == m2
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
