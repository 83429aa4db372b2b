"""The progress bar keeps three numbers on the epoch's line: the training loss, the validation loss
and the objective, also where the module logs the objective without prog_bar (language models)."""

from __future__ import annotations

from bigmodel_cli.commands import train
from tests.conftest import FAST


def test_the_bar_shows_the_objective_of_a_language_model(compose_cfg, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    args = ["model=gpt", "data=char_lm", "data.block_size=32", "model.dim=32", "model.depth=1", *FAST]
    with compose_cfg("train", args) as cfg:
        assert cfg.objective == "val/acc"
        train.run(cfg)
    epoch_lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch ")]
    assert epoch_lines and all(
        "loss:" in line and "val/loss:" in line and "val/acc:" in line for line in epoch_lines
    ), epoch_lines
