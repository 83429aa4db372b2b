"""The console helpers: numbers to 4 significant digits, third-party log records kept off the
terminal, and a progress bar only for work that takes a while."""

from __future__ import annotations

import logging

from bigmodel_cli import console


def test_significant_digits():
    assert console.significant(0.9861111044883728) == "0.9861"
    assert console.significant(3.14159e-05) == "3.142e-05"
    assert console.significant(1257.0) == "1257" and console.significant(12) == "12"
    assert console.significant("best.ckpt") == "best.ckpt"


def test_console_filter_keeps_own_records_and_errors_only():
    keep = console.ConsoleFilter().filter

    def record(name, level):
        return logging.LogRecord(name, level, __file__, 1, "m", None, None)

    assert keep(record("bigmodel_cli.commands.train", logging.INFO))
    assert keep(record("pytorch_lightning.trainer", logging.ERROR))
    assert not keep(record("pytorch_lightning.utilities.rank_zero", logging.INFO))
    assert not keep(record("py.warnings", logging.WARNING))


def test_progress_bar_appears_only_after_the_delay(monkeypatch, capsys):
    assert list(console.slow_progress(range(5), "quick", total=5)) == [0, 1, 2, 3, 4]
    assert "quick" not in capsys.readouterr().err  # fast work shows no bar
    monkeypatch.setattr(console, "PROGRESS_DELAY_S", -1.0)  # as if every item took long
    assert list(console.slow_progress(range(5), "tokenising", total=5)) == [0, 1, 2, 3, 4]
    assert "tokenising" in capsys.readouterr().err
