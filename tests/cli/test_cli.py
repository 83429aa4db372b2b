"""The command line as users type it: help, start-up without torch, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bigmodel_cli.config import catalogue
from tests.conftest import FAST

NO_TORCH_PROBE = """
import contextlib, io, json, sys
from bigmodel_cli.cli.main import main
out = io.StringIO()
codes = []
for argv in (["--help"], ["train", "--cfg", "job"], ["cp", "--help"]):
    with contextlib.redirect_stdout(out):
        try:
            main(argv)
            codes.append(0)
        except SystemExit as exc:
            codes.append(exc.code or 0)
heavy = sorted(m for m in ("torch", "pytorch_lightning", "lightning", "torchvision", "optuna", "mlflow", "sqlalchemy") if m in sys.modules)
print(json.dumps({"codes": codes, "heavy": heavy, "out": out.getvalue()}))
"""


def test_help_cfg_job_and_cp_import_no_torch():
    result = subprocess.run([sys.executable, "-c", NO_TORCH_PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["codes"] == [0, 0, 0]
    assert probe["heavy"] == [], f"start-up imported {probe['heavy']}"
    for group, options in catalogue.groups().items():
        assert group in probe["out"]
        for option in options:
            assert option in probe["out"], f"--help does not list {group}={option}"
    assert "optimizer:" in probe["out"], "--cfg job printed no config"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
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
    ],
)
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


def write_not_a_checkpoint(kind: str, where: Path) -> Path:
    """A file (or directory) that is given as ckpt_path but is not a checkpoint."""
    import pickle
    import zipfile

    import torch

    path = where / f"{kind}.ckpt"
    if kind == "text":
        path.write_text("hello world\n" * 10)
    elif kind == "readme":
        path.write_text((Path(__file__).parents[2] / "README.md").read_text())
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "not a tensor")
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "state_dict_list":
        torch.save({"state_dict": [], "hyper_parameters": {"config": {}}}, path)
    elif kind == "empty_config":
        torch.save({"state_dict": {}, "hyper_parameters": {"config": {}}}, path)
    elif kind == "string_config":
        torch.save({"state_dict": {}, "hyper_parameters": {"config": "x"}}, path)
    return path


# kind -> what the error line says the file is
NOT_A_CHECKPOINT = {
    "text": "is not a readable checkpoint: it is a text file",
    "readme": "is not a readable checkpoint: it is a text file",
    "empty": "is not a readable checkpoint: it is an empty file (0 bytes)",
    "random": "is not a readable checkpoint: it is not a torch checkpoint (unrecognised contents",
    "zip": "is not a readable checkpoint: it is a zip archive that is not a torch checkpoint",
    "pickle": "is not a readable checkpoint: it is a Python pickle",
    "directory": "is a directory, not a checkpoint file",
    "fifo": "is not a regular file",
    "list": "is not a Lightning checkpoint (a torch file holding a list)",
    "state_dict_list": "is not a Lightning checkpoint (a torch file holding a state_dict that is a list",
    "empty_config": "was not written by bigmodel (no run config with a model and data",
    "string_config": "was not written by bigmodel (no run config with a model and data",
}


@pytest.mark.parametrize("kind", NOT_A_CHECKPOINT)
def test_not_a_checkpoint_is_one_line(cli, in_tmp_cwd, kind):
    path = write_not_a_checkpoint(kind, in_tmp_cwd)
    before = path.read_bytes() if path.is_file() else None
    code, out, err = cli("test", f"ckpt_path={path}", *FAST)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert lines[0].startswith(f"error: ckpt_path={path} {NOT_A_CHECKPOINT[kind]}")
    assert "fix: give" in lines[0]
    assert "Traceback" not in out + err
    if before is not None:
        assert path.read_bytes() == before, "a file given as ckpt_path must not be modified"


def test_a_run_directory_as_ckpt_path_names_its_best_checkpoint(cli, in_tmp_cwd):
    run = in_tmp_cwd / "outputs" / "train" / "r1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(b"")
    code, _, err = cli("test", f"ckpt_path={run}", *FAST)
    assert code == 2
    assert f"ckpt_path={run} is a directory, not a checkpoint file; fix: give {run}/checkpoints/best.ckpt" in err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line, got:\n{err}"
    assert "Traceback" not in err
    return lines[0]


RUN_DIR_FIX = (
    "fix: run from a directory you can write to, or pick one with hydra.run.dir=<writable dir> "
    "(hydra.sweep.dir=<writable dir> with --multirun)"
)


def test_outputs_that_is_a_file_is_one_line(cli, in_tmp_cwd):
    (in_tmp_cwd / "outputs").write_text("my notes\n")
    code, _, err = cli("train", *FAST)
    assert code == 2
    line = one_line_error(err)
    assert line.startswith("error: cannot create or write the run directory outputs/train/")
    assert "(outputs is an existing file, not a directory)" in line and line.endswith(RUN_DIR_FIX)
    assert (in_tmp_cwd / "outputs").read_text() == "my notes\n", "the existing file was touched"


def test_run_dir_that_is_an_existing_file_is_one_line(cli, in_tmp_cwd):
    existing = in_tmp_cwd / "results.csv"
    existing.write_text("a,b\n1,2\n")
    code, _, err = cli("train", *FAST, f"hydra.run.dir={existing}")
    assert code == 2
    line = one_line_error(err)
    assert f"cannot create or write the run directory {existing}: " in line
    assert f"({existing} is an existing file, not a directory)" in line and line.endswith(RUN_DIR_FIX)
    assert existing.read_text() == "a,b\n1,2\n"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("mode", ["run", "multirun"])
def test_run_dir_that_cannot_be_created_is_one_line(cli, in_tmp_cwd, mode):
    if mode == "run":
        code, _, err = cli("train", *FAST, "hydra.run.dir=/proc/forbidden/x")
    else:
        code, _, err = cli("train", "-m", *FAST, "hydra.sweep.dir=/proc/forbidden/x", "optimizer.lr=0.1,0.2")
    assert code == 2
    line = one_line_error(err)
    assert line.startswith("error: cannot create or write the run directory /proc/forbidden/x: /proc/forbidden: ")
    assert "(/proc does not take new directories)" in line and line.endswith(RUN_DIR_FIX)
    assert not (in_tmp_cwd / "outputs").exists() and not (in_tmp_cwd / "multirun").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_outputs_is_one_line(cli, in_tmp_cwd):
    outputs = in_tmp_cwd / "outputs"
    outputs.mkdir()
    (outputs / "keep.txt").write_text("keep")
    outputs.chmod(0o555)
    try:
        code, _, err = cli("train", *FAST)
    finally:
        outputs.chmod(0o755)
    assert code == 2
    line = one_line_error(err)
    assert "cannot create or write the run directory outputs/train/" in line
    assert "(outputs is not writable)" in line and line.endswith(RUN_DIR_FIX)
    assert [p.name for p in outputs.iterdir()] == ["keep.txt"]


LITERAL = "failed at [/__w/x/pair.cc:561] with regularizer=[l2,dropout] and [bold]not bold[/bold]"


def test_report_prints_user_text_literally(capsys):
    from bigmodel_cli.errors import print_error

    assert print_error(LITERAL, None, code=2) == 2
    assert capsys.readouterr().err == f"error: {LITERAL}\n"


@pytest.mark.parametrize(
    ("argv", "literal"),
    [
        (["train", "regularizer=[l2,dropout]]"], "Error parsing override 'regularizer=[l2,dropout]]'"),
        (["test", "ckpt_path='[/__w/x/pair.cc:561]'"], "ckpt_path=[/__w/x/pair.cc:561] does not exist"),
    ],
)
def test_errors_with_brackets_print_literally(cli, argv, literal):
    code, _, err = cli(*argv)
    assert code == 2
    assert literal in one_line_error(err)


def test_unknown_option_inside_a_list_names_the_choices(cli):
    code, _, err = cli("train", "regularizer=[l2,xyzzy]")
    assert code == 2 and "Traceback" not in err
    assert "unknown option xyzzy in regularizer=[...]; valid choices: dropout," in err


@pytest.mark.parametrize(
    "override, suggestion",
    [
        ("model=tranformer", "did you mean model=transformer?"),
        ("regularizer=[l2,dropot]", "did you mean dropout?"),
        ("optimizer.lrr=0.1", "did you mean optimizer.lr?"),
        ("trainer.max_epoch=3", "did you mean trainer.max_epochs?"),
        ("optimizr=adam", "did you mean optimizer?"),
        # Added with +, the key passes composition and reaches Adam, which names what it takes.
        ("+optimizer.lrr=0.1", "did you mean optimizer.lr?"),
    ],
)
def test_typos_get_a_suggestion(cli, override, suggestion):
    code, _, err = cli("train", override)
    assert code == 2 and suggestion in one_line_error(err)


def test_no_suggestion_for_a_word_like_nothing_known(cli):
    code, _, err = cli("train", "zzzz=1")
    assert code == 2 and "did you mean" not in err and "unknown config key 'zzzz'" in err


TOOLS_PROBE = """
import contextlib, io, json, sys
from bigmodel_cli.cli.main import main
for argv in (["runs"], ["diff", "a", "b"], ["completion", "--line", "bigmodel train optimizer."], ["report", "."]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
print(json.dumps(sorted(m for m in ("torch", "pytorch_lightning", "hydra", "matplotlib") if m in sys.modules)))
"""


def test_run_tools_import_no_torch_or_hydra(tmp_path):
    """runs, diff, completion and report read run.json and conf/ alone: they answer at once."""
    result = subprocess.run([sys.executable, "-c", TOOLS_PROBE], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_a_reader_that_leaves_early_is_no_error(tmp_path):
    """`bigmodel runs --json | head`: no BrokenPipeError traceback when the reader closes the pipe."""
    for n in range(400):  # more JSON than a pipe buffers
        (tmp_path / "outputs" / "train" / f"run{n}").mkdir(parents=True)
        (tmp_path / "outputs" / "train" / f"run{n}" / "run.json").write_text(json.dumps({"status": "completed"}))
    bigmodel = [sys.executable, "-m", "bigmodel_cli"]
    process = subprocess.Popen(
        [*bigmodel, "runs", "--json"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_help_with_an_option_names_the_code_that_builds_and_reads_it(cli):
    """`bigmodel train --help group=option`: the option's file, its _target_ and its reader, each
    with a file:line that holds that definition; a wrong option is one line, exit 2."""
    import re

    from bigmodel_cli.cli.readers import SOURCE_ROOT

    code, out, _ = cli("train", "--help", "regularizer=l1", "accelerator=ddp", "model=cnn")
    assert code == 0, out
    assert "regularizer=l1: conf/regularizer/l1.yaml" in out and "l1=1e-05" in out
    assert "read by  bigmodel_cli.lightning_modules.regularization:Regularization" in out
    assert "builds   bigmodel_cli.models.cnn.CNN" in out and "builds   bigmodel_cli.training.strategies.ddp" in out
    places = re.findall(r"[:.](\w+)  ([\w/]+\.py):(\d+)", out)
    assert len(places) >= 5
    for name, path, line in places:
        text = (SOURCE_ROOT / path).read_text().splitlines()[int(line) - 1]
        assert re.match(rf"(class|def) {name}\b", text), f"{path}:{line} is not {name}: {text}"
    code, _, err = cli("train", "--help", "regularizer=l9")
    assert code == 2 and "regularizer=l9 is not an option; valid choices: dropout" in err
