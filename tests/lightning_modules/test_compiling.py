"""compile=true (lightning_modules/compiling.py): dynamo compiles the backbone and training gives
what eager training gives, beside EMA and pruning too; checkpoints keep the eager names, so they go
from a compiled run to an eager one and back (init_from=, resume=) and export; a model dynamo
cannot capture trains eagerly with one line, or is refused under compile.fullgraph=true."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bigmodel_cli.config.source import expanded_switches
from bigmodel_cli.errors import UserError
from bigmodel_cli.lightning_modules.compiling import CompileSettings, is_compiled
from tests.conftest import FAST, TWO_EPOCHS, fitted
from tests.runs.test_fault_matrix import validation_rows


def unique_graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def trained(compose_cfg, monkeypatch, overrides: list[str], name: str):
    """(validation rows, last.ckpt, the fitted module, graphs dynamo compiled during the run)."""
    with compose_cfg("train", [*overrides, "accelerator=cpu", "test_after_fit=false"], name=name) as cfg:
        before = unique_graphs()
        _, _, module = fitted(cfg, monkeypatch)
        run = Path(cfg.paths.output_dir)
    monkeypatch.undo()
    return (
        validation_rows(run),
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=True),
        module,
        unique_graphs() - before,
    )


def assert_close_rows(compiled: list[dict], eager: list[dict]) -> None:
    assert [r["step"] for r in compiled] == [r["step"] for r in eager]
    for a, b in zip(compiled, eager):
        for key in b:
            if key.startswith("val/") and b[key]:
                assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-3, abs=1e-4), key


# The effect test of compile=true (tests/config/test_option_effects.py), and its pairings with the
# options that act on the parameters: EMA swaps averaged weights in for validation, pruning masks
# weights through hooks it adds at epoch starts. Each must train as eagerly.
@pytest.mark.parametrize(
    "pairing",
    [[], ["regularizer=ema", "regularizer.callbacks.ema.decay=0.9"], ["compress=prune", "trainer.max_epochs=3"]],
    ids=["alone", "ema", "prune"],
)
def test_compiled_training_is_eager_training_and_dynamo_compiled_it(pairing, compose_cfg, monkeypatch):
    overrides = [*TWO_EPOCHS, "trainer.limit_val_batches=1", *pairing]
    eager_rows, eager_ckpt, _, _ = trained(compose_cfg, monkeypatch, overrides, "eager")
    rows, ckpt, module, graphs = trained(compose_cfg, monkeypatch, [*overrides, "compile=true"], "compiled")
    assert is_compiled(module.backbone) and graphs >= 2, f"compile=true compiled {graphs} graphs"
    assert_close_rows(rows, eager_rows)
    for part in ("state_dict", "current_model_state"):
        assert ckpt.get(part, {}).keys() == eager_ckpt.get(part, {}).keys()  # no _orig_mod. anywhere
        for name, value in ckpt.get(part, {}).items():
            torch.testing.assert_close(value, eager_ckpt[part][name], rtol=1e-3, atol=1e-4, msg=f"{part} {name}")
    if "compress=prune" in pairing:
        weights = [v for k, v in ckpt["state_dict"].items() if k.endswith("weight") and v.dim() > 1]
        zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
        assert zeros == pytest.approx(0.5, abs=0.02), f"sparsity {zeros}"


def test_a_compiled_checkpoint_loads_into_an_eager_model_and_back(cli, in_tmp_cwd):
    """init_from= (the same classes: init_head=pretrained) loads every tensor both ways; resume= (strict loading) continues either way; the
    compiled run's checkpoint exports."""
    runs = in_tmp_cwd / "outputs" / "train"

    def train(*args):
        code, out, err = cli("train", *FAST, "accelerator=cpu", "test_after_fit=false", "logger=none", *args)
        assert code == 0, err
        return out

    train("compile=true", "run_name=compiled")
    train(f"init_from={runs / 'compiled'}", "init_head=pretrained", "run_name=eager")
    train("compile=true", f"init_from={runs / 'eager'}", "init_head=pretrained", "run_name=again")
    keys = set(torch.load(runs / "eager" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])
    for run in ("eager", "again"):
        record = json.loads((runs / run / "run.json").read_text())["init_from"]
        assert set(record["loaded"]) == keys and not record["reinitialised"], run
    assert "resuming" in train(f"resume={runs / 'compiled'}", "compile=false", "trainer.max_epochs=2")
    assert "resuming" in train(f"resume={runs / 'eager'}", "compile=true", "trainer.max_epochs=2")
    code, _, err = cli("export", f"ckpt_path={runs / 'again' / 'checkpoints' / 'last.ckpt'}", "format=pt2")
    assert code == 0, err


def test_a_model_dynamo_cannot_capture_trains_eagerly_or_is_refused_under_fullgraph(cli, in_tmp_cwd):
    """torch's dynamo does not trace nn.LSTM (model=rnn): one line and eager training, or with
    compile.fullgraph=true a one-line refusal before training (exit 2)."""
    common = ["train", "model=rnn", *FAST, "accelerator=cpu", "logger=none", "compile=true"]
    code, out, err = cli(*common)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("compile:")]
    # dynamo's own reason varies with what it traced before in the process ("Attempted to wrap RNN",
    # "no graph was captured"): the line names the model and gives one.
    assert (
        len(lines) == 1 and "RNN trains eagerly" in lines[0] and len(lines[0]) > len("compile: RNN trains eagerly, ")
    ), out
    code, out, err = cli(*common, "compile.fullgraph=true", "run_name=refused")
    assert code == 2 and "compile.fullgraph=true" in err and len(err.strip().splitlines()) == 1, err
    assert not list((in_tmp_cwd / "outputs" / "train" / "refused").rglob("*.ckpt"))


def test_compile_true_is_short_for_compile_enabled_and_combines_with_its_keys(compose_cfg):
    assert expanded_switches(["compile=true", "+compile=false", "compile=true,false", "compile.mode=x"]) == [
        "compile.enabled=true",
        "+compile.enabled=false",
        "compile.enabled=true,false",
        "compile.mode=x",
    ]
    with compose_cfg("train", ["compile=true", "compile.mode=max-autotune", "compile.dynamic=false"]) as cfg:
        settings = CompileSettings.from_config(cfg)
    assert settings == CompileSettings(enabled=True, mode="max-autotune", dynamic=False)
    assert CompileSettings.from_config({}) == CompileSettings()  # a run saved before compile existed
    with pytest.raises(UserError, match="compile.mode=fast is not a torch.compile mode; valid choices: default"):
        CompileSettings.from_config({"compile": {"mode": "fast"}})
