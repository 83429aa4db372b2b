"""Sweeps (failed jobs, --fail-fast, skip_completed), bigmodel report,
and reproducing a run (bigmodel reproduce --verify; Hydra's --config-path way)."""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import FAST


def run_json(path):
    return json.loads(path.read_text())


def test_failed_job_is_recorded_and_the_sweep_goes_on(cli, in_tmp_cwd):
    code, _, err = cli("train", "-m", *FAST, "run_name=s1", "optimizer.lr=-1,0.01")
    sweep = in_tmp_cwd / "multirun" / "train" / "s1"
    assert code == 2 and "job 0 (" in err and "optimizer.lr=-1 is out of range" in err and "1 job(s) failed" in err
    assert run_json(sweep / "0" / "run.json")["status"] == "failed"
    assert "optimizer.lr=-1" in run_json(sweep / "0" / "run.json")["error"]
    assert run_json(sweep / "1" / "run.json")["status"] == "completed"


def test_fail_fast_stops_at_the_first_failure(cli, in_tmp_cwd):
    code, _, err = cli("train", "-m", *FAST, "run_name=s2", "optimizer.lr=-1,0.01", "--fail-fast")
    sweep = in_tmp_cwd / "multirun" / "train" / "s2"
    assert code == 1 and "stopped at the first failed job" in err
    assert run_json(sweep / "0" / "run.json")["status"] == "failed"
    assert not (sweep / "1").exists()


def test_skip_completed_and_report(cli, in_tmp_cwd):
    args = ["train", "-m", *FAST, "logger=csv", "run_name=s3", "optimizer.lr=0.01,0.002", "skip_completed=true"]
    assert cli(*args)[0] == 0
    sweep = in_tmp_cwd / "multirun" / "train" / "s3"
    before = [run_json(sweep / n / "run.json") for n in ("0", "1")]
    code, out, _ = cli(*args)
    assert code == 0 and out.count("skipped: the same config completed in") == 2
    assert [run_json(sweep / n / "run.json") for n in ("0", "1")] == before
    code, out, _ = cli("train", "-m", *FAST, "run_name=s3", "optimizer.lr=0.01", "seed=7", "skip_completed=true")
    assert code == 0 and "skipped: the same config" not in out  # a different config runs

    code, out, err = cli("report", str(sweep))
    assert code == 0, err
    with open(sweep / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {"optimizer.lr", "seed", "val/acc (best)", "status", "duration_s"} <= set(rows[0])
    scores = [float(r["val/acc (best)"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert (sweep / "summary.md").read_text().startswith("| job |")
    assert (sweep / "plot_optimizer_lr.png").stat().st_size > 0 and (sweep / "learning_curves.png").is_file()


def test_report_reads_a_sweep_that_is_still_running(cli, in_tmp_cwd):
    job = in_tmp_cwd / "sweep" / "0"
    (job / "csv").mkdir(parents=True)
    (job / "run.json").write_text(
        json.dumps(
            {"status": "running", "overrides": ["optimizer.lr=0.1"], "start_time": "2026-01-01T00:00:00", "config": {}}
        )
    )
    (job / "csv" / "metrics.csv").write_text("epoch,step,val/acc\n0,3,0.5\n1,7,0.6\n")
    code, out, err = cli("report", "sweep", "--no-plots")
    assert code == 0, err
    assert "running" in (in_tmp_cwd / "sweep" / "summary.csv").read_text() and "0.6 " in out


def test_reproduce_verifies_metrics_and_warns_about_the_environment(cli, in_tmp_cwd):
    assert cli("train", *FAST, "accelerator=cpu", "deterministic=true", "run_name=orig")[0] == 0
    run = in_tmp_cwd / "outputs" / "train" / "orig"
    record = run_json(run / "run.json")
    record["versions"]["torch"] = "0.0.1"
    (run / "run.json").write_text(json.dumps(record))
    code, out, err = cli("reproduce", str(run), "--verify")
    assert code == 0, err
    assert "warning: differs from the recorded run: torch 0.0.1 ->" in out and "verified:" in out

    metrics = run_json(run / "metrics.json")
    metrics["val/acc"] += 0.25
    (run / "metrics.json").write_text(json.dumps(metrics))
    code, _, err = cli("reproduce", str(run), "--verify")
    assert code == 1 and "metrics differ" in err and "val/acc: saved" in err


def test_hydra_config_path_reruns_a_saved_config(cli, in_tmp_cwd):
    assert cli("train", *FAST, "run_name=src", "optimizer.lr=0.0123")[0] == 0
    code, _, err = cli("train", "--config-path", "outputs/train/src/.hydra", "--config-name", "config")
    assert code == 0, err
    runs = [p for p in (in_tmp_cwd / "outputs" / "train").iterdir() if p.name != "src"]
    assert len(runs) == 1 and run_json(runs[0] / "run.json")["status"] == "completed"
    assert run_json(runs[0] / "run.json")["config"]["optimizer"]["lr"] == pytest.approx(0.0123)
