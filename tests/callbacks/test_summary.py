"""The model summary describes the backbone to callbacks.model_summary.max_depth: its layers, their
parameters, output shapes and FLOPs, and none of the loss or metric modules."""

from __future__ import annotations

import pytest

from bigmodel_cli.commands import train
from tests.conftest import FAST


@pytest.mark.parametrize("depth", [1, 2])
def test_max_depth_sets_how_deep_the_summary_goes(depth, compose_cfg, capsys):
    with compose_cfg("train", [f"callbacks.model_summary.max_depth={depth}", *FAST]) as cfg:
        train.run(cfg)
    out = capsys.readouterr().out
    table = out[out.index("model: CNN") : out.index("parameters (")]
    assert "features" in table and "head" in table
    assert ("Conv2d" in table) == (depth == 2)  # the convolutions sit at depth 2
    assert "CrossEntropyLoss" not in table and "MetricCollection" not in table
    # A 3x3 convolution from 1 to 32 channels on 8x8: 2 * 9 * 32 * 64 FLOPs per sample.
    if depth == 2:
        assert "36.9 K" in table
    assert "53.1 K parameters (53.1 K trainable)" in out
