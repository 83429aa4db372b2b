"""`bigmodel runs` lists real runs (and filters them), `bigmodel diff` names what differs between
two of them; both read run.json only."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from tests.conftest import FAST


def old_copy(run_dir, root, name: str, days: int, status: str) -> None:
    """A copy of a real run's record, as if it had started `days` ago and ended with `status`."""
    record = json.loads((run_dir / "run.json").read_text())
    start = datetime.now() - timedelta(days=days)
    record.update(status=status, start_time=start.isoformat(), end_time=(start + timedelta(seconds=75)).isoformat())
    (root / name).mkdir(parents=True)
    (root / name / "run.json").write_text(json.dumps(record))


def test_runs_lists_filters_and_diff_compares(cli, in_tmp_cwd, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # a wide terminal: every override on the table
    assert cli("train", *FAST)[0] == 0
    assert cli("train", *FAST, "optimizer=sgd", "optimizer.lr=0.05", "seed=7")[0] == 0
    runs = list((in_tmp_cwd / "outputs" / "train").iterdir())
    sgd = next(p for p in runs if "optimizer=sgd" in (p / "run.json").read_text())
    adam = next(p for p in runs if p != sgd)
    old_copy(adam, in_tmp_cwd / "outputs" / "train", "ancient", days=30, status="failed")

    code, out, _ = cli("runs", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows][-1] == "ancient"  # newest first
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {adam.name[-6:], sgd.name[-6:], "ancient"}  # generated names shown by their tag
    tuned = by_id[sgd.name[-6:]]
    assert tuned["overrides"][-3:] == ["optimizer=sgd", "optimizer.lr=0.05", "seed=7"]
    metrics = json.loads((sgd / "metrics.json").read_text())
    assert tuned["objective_value"] == metrics["val/acc_best"] and tuned["test_value"] == metrics["test/acc"]

    assert [r["id"] for r in json.loads(cli("runs", "--json", "--status", "failed")[1])] == ["ancient"]
    assert {r["id"] for r in json.loads(cli("runs", "--json", "--since", "2d")[1])} == {adam.name[-6:], sgd.name[-6:]}
    assert [r["id"] for r in json.loads(cli("runs", "--json", "--match", "sgd")[1])] == [sgd.name[-6:]]
    code, out, _ = cli("runs")
    assert code == 0 and "3 run(s)" in out and "failed" in out and "30d" in out and "optimizer=sgd" in out
    monkeypatch.setenv("COLUMNS", "60")  # a narrow one: whole columns, the most telling first
    code, out, _ = cli("runs")
    assert code == 0 and max(map(len, out.splitlines())) <= 60, out
    assert sgd.name[-6:] in out and "failed" in out and "not shown at this width: command" in out

    code, _, err = cli("runs", "--since", "yesterday")
    assert code == 2 and "--since yesterday" in err and "e.g. --since 2d" in err

    # diff: the keys that differ (not the run directories' own paths), the seed, the metrics.
    code, out, _ = cli("diff", str(adam), sgd.name[-6:])
    assert code == 0
    assert "optimizer._target_" in out and "torch.optim.SGD" in out and "optimizer.lr" in out
    assert "seed" in out and "val/acc" in out and "paths.output_dir" not in out
    code, out, _ = cli("diff", str(adam), str(adam))
    assert code == 0 and "no differences" in out
    code, _, err = cli("diff", str(adam), "outputs/nowhere")
    assert code == 2 and "outputs/nowhere is not a run directory" in err


def write_record(folder, record) -> None:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(record))


def test_odd_run_files_are_noted_not_fatal_and_pruned_runs_filter(cli, in_tmp_cwd, monkeypatch):
    """A run.json holding [] is skipped with one note, one whose start_time is not a date is listed
    with a note and no age; --status pruned finds the pruned trial; diff refuses [] in one line and
    compares the odd date like any other value."""
    monkeypatch.setenv("COLUMNS", "200")
    now = datetime.now()
    base = {
        "task": "train",
        "overrides": ["optimizer.lr=0.01"],
        "config": {"objective": "val/acc", "optimizer": {"lr": 0.01}},
        "metrics": {"val/acc": 0.5},
    }
    runs = in_tmp_cwd / "outputs" / "train"
    for name, status, start in (("good", "completed", now.isoformat()), ("trial", "pruned", now.isoformat())):
        write_record(runs / name, {**base, "status": status, "start_time": start, "end_time": start})
    write_record(runs / "odd", {**base, "status": "completed", "start_time": "yesterday-ish", "end_time": "later"})
    write_record(runs / "listed", [])

    code, out, err = cli("runs")
    assert code == 0, err
    assert "3 run(s)" in out and "good" in out and "trial" in out and "odd" in out
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert len(notes) == 2, out
    assert any("outputs/train/listed/run.json" in n and "JSON list" in n for n in notes), notes
    assert any("outputs/train/odd:" in n and "'yesterday-ish'" in n and "not a date" in n for n in notes), notes

    code, out, err = cli("runs", "--json")
    rows = {r["id"]: r for r in json.loads(out)}  # stdout stays JSON, the notes go to stderr
    assert code == 0 and set(rows) == {"good", "trial", "odd"} and "note:" in err
    assert rows["odd"]["age_s"] is None and rows["odd"]["duration_s"] is None and rows["good"]["age_s"] >= 0

    code, out, err = cli("runs", "--json", "--status", "pruned")
    assert code == 0 and [r["id"] for r in json.loads(out)] == ["trial"], err

    code, _, err = cli("diff", str(runs / "good"), str(runs / "listed"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a run record" in err, err
    code, out, err = cli("diff", str(runs / "good"), str(runs / "odd"))
    assert code == 0 and "no differences" in out, err  # start and end times are not what diff compares
