"""`bigmodel report` on a terminal: numbers to 4 significant digits, whole columns that fit its
width (the most telling first; summary.csv keeps every column), user text shown literally."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta


def write_sweep(root, jobs: int = 3) -> None:
    """A sweep's jobs as `bigmodel train -m` leaves them: a run.json each (one job failed)."""
    start = datetime(2026, 1, 1, 12, 0, 0)
    for n in range(jobs):
        failed = n == jobs - 1
        record = {
            "status": "failed" if failed else "completed",
            "error": "TypeError: " + "a long error message " * 10 if failed else "",
            "task": "train",
            "overrides": [
                f"optimizer.lr={10 ** -(n + 1)}",
                "regularizer=" + ("[l2,dropout]" if n % 2 else "l2"),
                f"seed={n}",
            ],
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(seconds=75 + n)).isoformat(),
            "config": {"objective": "val/acc", "objective_mode": "max"},
            "metrics": {}
            if failed
            else {
                "val/acc": 0.9 - n / 30,
                "val/acc_best": 0.9861111044883728 - n / 30,
                "val/loss": 0.3123456789,
                "test/acc": 0.9777777,
                "test/loss": 0.0412345678,
                "train/loss": 0.003264123,
            },
        }
        (root / str(n)).mkdir(parents=True)
        (root / str(n) / "run.json").write_text(json.dumps(record))


def test_report_fits_a_narrow_terminal(cli, in_tmp_cwd, monkeypatch):
    write_sweep(in_tmp_cwd / "sweep")
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli("report", "sweep", "--no-plots")
    assert code == 0, err
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80, out
    head = next(line for line in lines if "┃ job" in line)
    # Whole column names, the objective and the swept parameters first; not letter-folded.
    assert all(name in head for name in ("job", "val/acc (best)", "optimizer.lr", "seed", "status")), out
    assert "0.9861" in out and "0.98611" not in out  # 4 significant digits
    assert "not shown at this width:" in out and "(in summary.csv)" in out
    # The failed job's error: one line, under the table, cut to the width.
    (error,) = [line for line in lines if line.startswith("2 failed: TypeError")]
    assert error.endswith("…")
    with open(in_tmp_cwd / "sweep" / "summary.csv", newline="") as f:
        first = next(csv.DictReader(f))
    assert {"val/loss", "test/loss", "train/loss", "duration_s"} <= set(first)  # the file keeps all


def test_report_shows_every_column_and_user_text_on_a_wide_terminal(cli, in_tmp_cwd, monkeypatch):
    write_sweep(in_tmp_cwd / "sweep")
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = cli("report", "sweep", "--no-plots")
    assert code == 0, err
    assert "not shown at this width" not in out
    assert "test/loss" in out and "0.04123" in out and "1m15s" in out
    # An override that looks like rich markup is shown as typed (it used to vanish).
    assert "[l2,dropout]" in out


def test_report_without_matplotlib_writes_the_tables_and_notes_the_plots_in_one_line(cli, in_tmp_cwd, monkeypatch):
    """The base install has no matplotlib (the plots extra): the tables still come, the plots are one note."""
    import sys

    write_sweep(in_tmp_cwd / "sweep")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it now raises ImportError
    code, out, err = cli("report", "sweep")
    assert code == 0, err
    assert (in_tmp_cwd / "sweep" / "summary.csv").is_file() and not list((in_tmp_cwd / "sweep").glob("*.png"))
    (note,) = [line for line in out.splitlines() if line.startswith("note:")]
    assert note == "note: plots skipped: matplotlib is not installed (fix: pip install 'bigmodel-cli[plots]')"
