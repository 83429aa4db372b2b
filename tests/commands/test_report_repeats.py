"""`bigmodel train -m seed=1,2,3 optimizer=sgd,adam` then `bigmodel report`: per configuration the
mean ± sd of the objective over its seeds, and the permutation test of its difference from the best."""

from __future__ import annotations

import csv
import json
import statistics

import pytest

from bigmodel_cli.runs.repeats import permutation_p
from tests.conftest import FAST


def test_the_exact_permutation_test_counts_the_relabellings():
    # 1,2,3 vs 4,5,6: of the 20 ways to split six values in three and three, only the observed
    # split and its mirror have a difference of means as large (3): p = 2/20.
    assert permutation_p((1.0, 2.0, 3.0), (4.0, 5.0, 6.0)) == pytest.approx(0.1)
    assert permutation_p((1.0, 2.0), (1.0, 2.0)) == 1.0  # no difference: every split is as large
    many = tuple(float(i) for i in range(12))
    assert 0 < permutation_p(many, tuple(v + 100 for v in many)) < 0.01  # sampled: 24 choose 12 splits


@pytest.mark.slow
def test_report_sums_up_seed_repeats_per_configuration(cli, in_tmp_cwd):
    code, _, err = cli("train", "-m", "seed=1,2,3", "optimizer=sgd,adam", "run_name=seeds", *FAST)
    assert code == 0, err
    sweep = in_tmp_cwd / "multirun" / "train" / "seeds"
    code, out, err = cli("report", str(sweep), "--no-plots")
    assert code == 0, err
    assert "over seeds and folds: mean ± sd per configuration" in out
    with open(sweep / "repeats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # The oracle: each job's own best objective from its run.json, grouped by optimizer here.
    values: dict[str, list[float]] = {}
    for record in (json.loads(p.read_text()) for p in sweep.glob("*/run.json")):
        optimizer = next(o.split("=")[1] for o in record["overrides"] if o.startswith("optimizer="))
        values.setdefault(optimizer, []).append(record["metrics"]["val/acc_best"])
    assert sorted(row["optimizer"] for row in rows) == ["adam", "sgd"] and all(row["repeats"] == "3" for row in rows)
    for row in rows:
        mine = values[row["optimizer"]]
        assert float(row["val/acc mean"]) == pytest.approx(statistics.fmean(mine), rel=1e-3)
        assert float(row["sd"]) == pytest.approx(statistics.stdev(mine), rel=1e-3, abs=1e-4)
    best, other = rows
    assert float(best["val/acc mean"]) >= float(other["val/acc mean"]) and best["p vs best"] == "(best)"
    a, b = (tuple(values[r["optimizer"]]) for r in (other, best))
    assert float(other["p vs best"]) == pytest.approx(permutation_p(a, b), rel=1e-3)
