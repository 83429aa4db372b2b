"""bigmodel compress: int8 models are int8 (their graphs hold integer kernels, their files are
smaller) and keep their accuracy; pruning reaches the sparsity asked for and its checkpoint is a
real one that `bigmodel test` evaluates to the accuracy in the table."""

from __future__ import annotations

import json

import onnx
import pytest


def rows_of(run_dir) -> dict:
    return {row["method"]: row for row in json.loads((run_dir / "compress" / "compress.json").read_text())}


def operators(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_quantisation_makes_int8_models_that_keep_accuracy(digits_run, cli):
    checkpoint = digits_run / "checkpoints" / "best.ckpt"
    for method in ("quantize_dynamic", "quantize_static"):
        code, _, err = cli(
            "compress", f"ckpt_path={checkpoint}", f"method={method}", "repeats=5", "calibration_batches=4"
        )
        assert code == 0, err
    rows = rows_of(digits_run)
    fp32 = rows["onnx_fp32"]
    for method, kernels in (
        ("quantize_dynamic", {"ConvInteger", "MatMulInteger"}),
        ("quantize_static", {"QuantizeLinear"}),
    ):
        row = rows[method]
        path = digits_run / "compress" / row["file"]
        assert kernels & operators(path), f"{method}: no int8 kernels in {sorted(operators(path))}"
        assert row["size_mb"] < 0.5 * fp32["size_mb"]
        assert row["test_acc"] > fp32["test_acc"] - 0.05
    assert "DynamicQuantizeLinear" not in operators(digits_run / "compress" / "model_fp32.onnx")


def test_pruning_reaches_its_sparsity_and_writes_a_checkpoint_bigmodel_tests(digits_run, cli, in_tmp_cwd):
    checkpoint = digits_run / "checkpoints" / "best.ckpt"
    code, _, err = cli("compress", f"ckpt_path={checkpoint}", "method=prune", "amount=0.6", "repeats=5")
    assert code == 0, err
    row = rows_of(digits_run)["prune"]
    assert row["sparsity"] == pytest.approx(0.6, abs=0.01)
    assert rows_of(digits_run)["pytorch"]["sparsity"] < 0.01
    pruned = digits_run / "compress" / row["file"]
    code, out, err = cli("test", f"ckpt_path={pruned}")
    assert code == 0, err
    (metrics,) = (in_tmp_cwd / "outputs" / "test").glob("*/metrics.json")
    assert json.loads(metrics.read_text())["test/acc"] == pytest.approx(row["test_acc"], abs=1e-6)


def test_compress_errors_are_one_line(digits_run, cli):
    checkpoint = digits_run / "checkpoints" / "best.ckpt"
    code, _, err = cli("compress", f"ckpt_path={checkpoint}", "method=distill")
    assert code == 2 and "method=distill" in err and "quantize_dynamic, quantize_static, prune" in err
    code, _, err = cli("compress", f"ckpt_path={checkpoint}", "method=prune", "amount=1.5")
    assert code == 2 and "amount=1.5" in err and "Traceback" not in err


def test_counts_of_zero_are_one_line_and_write_nothing(digits_run, cli):
    checkpoint = digits_run / "checkpoints" / "best.ckpt"
    folder = digits_run / "compress"
    before = {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}
    for settings in (["method=quantize_static", "calibration_batches=0"], ["method=quantize_dynamic", "repeats=0"]):
        code, _, err = cli("compress", f"ckpt_path={checkpoint}", *settings)
        key = settings[1].split("=")[0]
        assert code == 2 and len(err.strip().splitlines()) == 1, (settings, err)
        assert settings[1] in err and f"fix: {key}=" in err, err
        after = {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}
        assert after == before, settings
