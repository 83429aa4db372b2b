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
