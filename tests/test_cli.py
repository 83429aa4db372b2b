"""The command line as users type it: help, start-up without torch, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bigmodel_cli import conf_tree

NO_TORCH_PROBE = """
import contextlib, io, json, sys
from bigmodel_cli.cli import main
out = io.StringIO()
codes = []
for argv in (["--help"], ["train", "--cfg", "job"]):
    with contextlib.redirect_stdout(out):
        try:
            main(argv)
            codes.append(0)
        except SystemExit as exc:
            codes.append(exc.code or 0)
heavy = sorted(m for m in ("torch", "pytorch_lightning", "lightning", "torchvision") if m in sys.modules)
print(json.dumps({"codes": codes, "heavy": heavy, "out": out.getvalue()}))
"""


def test_help_and_cfg_job_import_no_torch():
    result = subprocess.run([sys.executable, "-c", NO_TORCH_PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["codes"] == [0, 0]
    assert probe["heavy"] == [], f"start-up imported {probe['heavy']}"
    for group, options in conf_tree.groups().items():
        assert group in probe["out"]
        for option in options:
            assert option in probe["out"], f"--help does not list {group}={option}"
    assert "optimizer:" in probe["out"], "--cfg job printed no config"


@pytest.mark.parametrize(("argv", "expected"), [
    (["train", "model=nonexistent"], ["model=nonexistent", "valid choices", "cnn", "mlp"]),
    (["train", "optimizer.lr=abc"], ["optimizer.lr", "abc", "number"]),
    (["train", "no_such_key=1"], ["no_such_key", "+no_such_key"]),
    (["train", "optimizer.lr=-1"], ["optimizer.lr=-1", "positive"]),
    (["train", "regularizer=dropout", "regularizer.dropout=1.5"], ["regularizer.dropout=1.5", "[0, 1)"]),
    (["train", "data.val_fraction=0"], ["data.val_fraction=0", "between 0 and 1"]),
    (["train", "trainer.max_epochs=two"], ["trainer.max_epochs", "integer"]),
    (["train", "model._target_=os.system"], ["os.system", "refusing"]),
    (["test"], ["ckpt_path", "bigmodel test ckpt_path="]),
    (["test", "ckpt_path=missing.ckpt"], ["missing.ckpt", "does not exist"]),
    (["predict", "ckpt_path=missing.ckpt"], ["missing.ckpt", "does not exist"]),
    (["frobnicate"], ["frobnicate", "train"]),
])
def test_user_errors_are_one_line(cli, argv, expected):
    code, out, err = cli(*argv)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert lines[0].startswith("error:")
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} missing from {lines[0]!r}"
    assert "Traceback" not in out + err


def test_corrupt_checkpoint_is_one_line_and_untouched(cli, in_tmp_cwd):
    bad = in_tmp_cwd / "broken.ckpt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = cli("test", f"ckpt_path={bad}")
    assert code == 2 and "not a readable checkpoint" in err
    assert bad.read_bytes() == b"PK\x03\x04 not really a zip", "a bad checkpoint must not be modified"


def test_verbose_shows_traceback(cli):
    code, _, err = cli("train", "optimizer.lr=abc", "--verbose")
    assert code == 2
    assert "Traceback" in err and "error: invalid config" in err


def test_data_without_files_names_the_fix(cli):
    code, _, err = cli("train", "data=mnist", "debug=fdr")
    assert code == 2
    assert "MNIST files not found" in err and "data.download=true" in err


def test_version(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("bigmodel ")
