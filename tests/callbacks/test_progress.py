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


def test_the_bar_stops_without_waiting_out_its_redraw_period():
    # Lightning's redraw thread sleeps 1 / refresh_rate s between redraws and its stop waits for the
    # sleep to end: at refresh_rate=1 that is about a second after a fresh start.
    import time

    from pytorch_lightning import Trainer

    from bigmodel_cli.callbacks.progress import PromptRefreshThread, RichProgressBar

    bar = RichProgressBar(refresh_rate=1)
    trainer = Trainer(callbacks=[bar], logger=False, enable_checkpointing=False, enable_model_summary=False)
    bar._init_progress(trainer)
    thread = bar.progress.live._refresh_thread
    assert isinstance(thread, PromptRefreshThread)
    bar.progress.soft_refresh()  # a redraw request still reaches the thread (Lightning checks its class)
    assert thread.refresh_cond
    deadline = time.monotonic() + 5
    while thread.refresh_cond and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not thread.refresh_cond, "the thread never redrew"
    started = time.monotonic()
    bar._stop_progress()
    assert time.monotonic() - started < 0.5
    assert not thread.is_alive()
