"""The main job: `bigmodel train` on the embedded default (digits) reaches the promised accuracy."""

from __future__ import annotations

from bigmodel_cli.commands import train


def test_default_train_reaches_95_percent(compose_cfg):
    with compose_cfg("train", []) as cfg:
        metrics = train.run(cfg)
    assert metrics["test/acc"] >= 0.95, metrics
    assert metrics["val/acc"] >= 0.95, metrics
