"""Run directories and their records, through the real CLI (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from bigmodel_cli.config.resolvers import run_id

QUICK = ["debug=limit", "logger=csv"]


def run_dirs(root: Path, task: str = "train") -> list[Path]:
    return sorted(p for p in (root / "outputs" / task).iterdir() if p.is_dir())


def test_run_ids_are_unique_within_a_millisecond():
    ids = [run_id() for _ in range(200)]  # a burst of simultaneous starts: same millisecond, mostly
    assert len({i[:23] for i in ids}) < len(ids), "the burst should share milliseconds to test the tag"
    assert len(set(ids)) == len(ids)


def test_train_writes_a_complete_run_directory(cli, in_tmp_cwd):
    code, out, err = cli("train", *QUICK, "model=mlp")
    assert code == 0, err
    (run,) = run_dirs(in_tmp_cwd)
    for name in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        ".hydra/hydra.yaml",
        "metrics.json",
        "run.json",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "csv/metrics.csv",
    ):
        assert (run / name).is_file(), f"{name} missing from {run}"
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["command"] == "bigmodel train " + " ".join([*QUICK, "model=mlp"])
    assert record["seed"] == 12345
    assert record["config"]["model"]["_target_"] == "bigmodel_cli.models.mlp.MLP"
    assert record["config"]["paths"]["output_dir"].endswith(run.name), "run.json holds the resolved config"
    for package in ("torch", "pytorch-lightning", "hydra-core", "torchvision", "python"):
        assert record["versions"][package]
    assert {"host", "start_time", "end_time", "git_sha"} <= record.keys()
    metrics = json.loads((run / "metrics.json").read_text())
    assert record["metrics"] == metrics
    assert 0.0 <= metrics["test/acc"] <= 1.0 and "val/acc" in metrics
    saved = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    assert saved["seed"] == 12345, "the seed used must be in the saved config"


def test_two_runs_started_together_do_not_collide(cli, in_tmp_cwd):
    for _ in range(2):
        assert cli("train", *QUICK, "trainer.max_epochs=1", "test_after_fit=false")[0] == 0
    assert len(run_dirs(in_tmp_cwd)) == 2


def test_null_seed_is_drawn_and_saved(cli, in_tmp_cwd):
    assert cli("train", *QUICK, "seed=null", "test_after_fit=false")[0] == 0
    (run,) = run_dirs(in_tmp_cwd)
    seed = json.loads((run / "run.json").read_text())["seed"]
    assert isinstance(seed, int)
    assert yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["seed"] == seed


def test_failed_run_is_recorded(cli, in_tmp_cwd):
    code, _, err = cli("train", *QUICK, "data=cifar10")
    assert code == 2 and "CIFAR-10" in err
    (run,) = run_dirs(in_tmp_cwd)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "CIFAR-10" in record["error"]


def test_checkpoints_eval_and_predict(cli, in_tmp_cwd):
    assert cli("train", *QUICK)[0] == 0
    (run,) = run_dirs(in_tmp_cwd)
    best = run / "checkpoints" / "best.ckpt"
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)  # plain containers only
    assert checkpoint["hyper_parameters"]["config"]["data"]["num_classes"] == 10

    # The same checkpoint on the same test batches gives the training run's own test metrics.
    code, out, err = cli("test", f"ckpt_path={best}", "trainer.limit_test_batches=2")
    assert code == 0, err
    (test_run,) = run_dirs(in_tmp_cwd, "test")
    trained = json.loads((run / "metrics.json").read_text())
    tested = json.loads((test_run / "metrics.json").read_text())
    assert tested["test/acc"] == pytest.approx(trained["test/acc"]) and tested["test/loss"] == pytest.approx(
        trained["test/loss"]
    )

    code, _, err = cli("validate", f"ckpt_path={best}", "data.batch_size=7")
    assert code == 0, err
    (val_run,) = run_dirs(in_tmp_cwd, "validate")
    assert "val/acc" in json.loads((val_run / "metrics.json").read_text())

    code, _, err = cli("predict", f"ckpt_path={best}", "trainer.limit_predict_batches=null")
    assert code == 0, err
    (predict_run,) = run_dirs(in_tmp_cwd, "predict")
    rows = (predict_run / "predictions.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:2] == ["index", "predicted"] and header[2:] == [f"prob_{c}" for c in range(10)]
    assert len(rows) - 1 == round(1797 * 0.2), "one row per image of the test split (of the 1,797 digits)"
    first = rows[1].split(",")
    probs = [float(p) for p in first[2:]]
    assert abs(sum(probs) - 1) < 1e-3 and int(first[1]) == probs.index(max(probs))


def test_checkpoint_whose_weights_do_not_fit_its_model_is_one_line(cli, in_tmp_cwd):
    assert cli("train", *QUICK)[0] == 0
    (run,) = run_dirs(in_tmp_cwd)
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    checkpoint["state_dict"] = {k: v[..., :1] if v.ndim > 1 else v for k, v in checkpoint["state_dict"].items()}
    torch.save(checkpoint, in_tmp_cwd / "edited.ckpt")
    code, _, err = cli("test", "ckpt_path=edited.ckpt")
    assert code == 2 and "Traceback" not in err
    assert "ckpt_path=edited.ckpt: its weights do not fit the model its own config builds (size mismatch" in err
