"""bigmodel export: every model family in conf/model exports to ONNX with a dynamic batch (and
text length) and ONNX Runtime reproduces PyTorch's outputs; the command writes a checked file and
its table into the run's directory."""

from __future__ import annotations

import json

import pytest
import torch

from bigmodel_cli.deploy.export import deployable, export, runner
from bigmodel_cli.deploy.inputs import held_out_inputs, longest_input
from bigmodel_cli.training.pieces import build_datamodule, build_module, plain, probe
from tests.models.test_models import FITS, tiny_overrides
from tests.support.data_files import prepare_files_for


@pytest.mark.parametrize(("model", "modality"), FITS, ids=[f"{m}-{d}" for m, d in FITS])
def test_every_model_family_exports_and_onnx_runtime_matches(model, modality, compose_cfg, tmp_path):
    with compose_cfg("train", tiny_overrides(model, modality, compose_cfg)) as cfg:
        prepare_files_for(cfg, tmp_path)
        torch.manual_seed(0)
        datamodule = build_datamodule(cfg.data)
        module = build_module(plain(cfg))
        probe(module, datamodule)
    net = deployable(module, datamodule)
    inputs = held_out_inputs(datamodule, 16)
    exported = export(net, inputs[:8], tmp_path / "model.onnx", "onnx", longest_input(datamodule), model)
    onnx_model = runner(exported)
    # Other batch sizes than the example's (and, for text, other lengths) run: the dims are dynamic.
    cases = [inputs[:1], inputs[:13]]
    if inputs.ndim == 2 and not inputs.is_floating_point():
        shorter = inputs[:5, : max(2, inputs.shape[1] // 2)]
        cases.append(shorter)
    with torch.no_grad():
        for x in cases:
            expected, got = net(x), onnx_model(x)
            assert got.shape == expected.shape
            assert float((got - expected).abs().max()) < 1e-4
            assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_export_writes_onnx_and_pt2_checked_on_the_test_split(digits_run, cli):
    checkpoint = digits_run / "checkpoints" / "best.ckpt"
    for fmt in ("onnx", "pt2"):
        code, out, err = cli("export", f"ckpt_path={checkpoint}", f"format={fmt}", "repeats=5")
        assert code == 0, err
    rows = {row["format"]: row for row in json.loads((digits_run / "export" / "export.json").read_text())}
    assert set(rows) == {"pytorch", "onnx", "pt2"}
    for fmt in ("onnx", "pt2"):
        row = rows[fmt]
        assert (digits_run / "export" / row["file"]).is_file()
        assert row["max_abs_diff"] < 1e-4 and row["agreement"] == 1.0
        assert row["test_acc"] == rows["pytorch"]["test_acc"]
        assert row["inputs"] == "uint8 (batch, 1, 8, 8)"
        assert row["latency_b1_ms"] > 0 and row["latency_b64_ms"] > 0
    assert "| onnx | model.onnx |" in (digits_run / "export" / "export.md").read_text()
    # The metrics.json test accuracy of the run is what the exported model reaches on the same split.
    metrics = json.loads((digits_run / "metrics.json").read_text())
    assert rows["onnx"]["test_acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    # The file takes raw uint8 pixels at any batch size, without bigmodel.
    import onnxruntime

    session = onnxruntime.InferenceSession(str(digits_run / "export" / "model.onnx"))
    for batch in (1, 3):
        pixels = torch.randint(0, 256, (batch, 1, 8, 8), dtype=torch.uint8).numpy()
        assert session.run(None, {session.get_inputs()[0].name: pixels})[0].shape == (batch, 10)


def test_export_errors_are_one_line(digits_run, cli):
    code, _, err = cli("export", f"ckpt_path={digits_run}/checkpoints/best.ckpt", "format=tflite")
    assert code == 2 and "format=tflite" in err and "onnx, pt2" in err and "Traceback" not in err
    code, _, err = cli("export", "ckpt_path=missing.ckpt")
    assert code == 2 and "missing.ckpt" in err and len(err.strip().splitlines()) == 1


def test_repeats_of_zero_is_one_line_and_writes_nothing(digits_run, cli):
    folder = digits_run / "export"
    before = {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}
    code, _, err = cli("export", f"ckpt_path={digits_run}/checkpoints/best.ckpt", "repeats=0")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "repeats=0" in err and "fix: repeats=" in err, err
    after = {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}
    assert after == before
