"""Your own model and data, without editing bigmodel (README "Your own code"): the README's package
and config dir, written into a temp directory and used through the installed `bigmodel` command,
get what bigmodel's own options get: training, checks, listing, completion, reproduce and resume.

The runs that train are processes (a user's shell, with the package on PYTHONPATH); the lines that
stop before training run in-process through the same `main`, which is cheaper."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bigmodel_cli.commands.completion import candidates
from tests.conftest import FAST
from tests.support.readme import write_readme_files

BIGMODEL = str(Path(sys.executable).with_name("bigmodel"))
OWN = ["--config-dir", "my_conf", "model=tiny_net", "data=bars", "allow_targets=[my_pkg.]"]
# A text model of the user's, for the model/data fit check (the README's is an image model).
TEXT_MODEL = """
from torch import nn


class BagOfWords(nn.Module):
    modalities = ("text",)

    def __init__(self, num_classes, vocab_size, dim=16):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, dim, padding_idx=0)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        return self.head(self.embed(x))
"""
TEXT_OPTION = """# A bag of words of my_pkg.
_target_: my_pkg.text.BagOfWords
num_classes: ${data.num_classes}
vocab_size: ${data.vocab_size}
"""


@pytest.fixture
def project(in_tmp_cwd, monkeypatch):
    """A user's project dir (the cwd): the README's my_pkg and my_conf, plus a text model, importable
    as `export PYTHONPATH=$PWD` makes it."""
    written = write_readme_files(in_tmp_cwd)
    assert {"my_pkg/models.py", "my_pkg/data.py", "my_conf/model/tiny_net.yaml", "my_conf/data/bars.yaml"} <= set(
        written
    )
    (in_tmp_cwd / "my_pkg" / "text.py").write_text(TEXT_MODEL)
    (in_tmp_cwd / "my_conf" / "model" / "bag_of_words.yaml").write_text(TEXT_OPTION)
    monkeypatch.syspath_prepend(str(in_tmp_cwd))
    yield in_tmp_cwd
    for name in [m for m in sys.modules if m == "my_pkg" or m.startswith("my_pkg.")]:
        del sys.modules[name]  # the next test's my_pkg is another directory's


def bigmodel(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed command, as a user runs it from the project dir with the package importable."""
    path = os.pathsep.join(p for p in (str(cwd), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([BIGMODEL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def newest_run(cwd: Path, but: Path | None = None) -> Path:
    runs = [p for p in (cwd / "outputs" / "train").iterdir() if p != but and (p / "metrics.json").is_file()]
    return max(runs, key=lambda p: p.stat().st_mtime)


@pytest.mark.slow
def test_a_users_model_and_data_train_reproduce_and_resume(project):
    from my_pkg.models import TinyNet

    bigmodel(project, "train", *OWN, "deterministic=true", "accelerator=cpu", *FAST, "run_name=mine")
    run = project / "outputs" / "train" / "mine"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    trained = {k.removeprefix("backbone.") for k in checkpoint["state_dict"] if k.startswith("backbone.")}
    assert trained == set(TinyNet(3, 1, 8).state_dict()), "the checkpoint holds the user's module"
    assert checkpoint["hyper_parameters"]["config"]["data"]["source"]["_target_"] == "my_pkg.data.bars"
    saved = json.loads((run / "metrics.json").read_text())

    # No flag names my_conf here: the run's .hydra/hydra.yaml does, and the new run records it again.
    bigmodel(project, "reproduce", str(run), "--verify")
    again = newest_run(project, but=run)
    assert json.loads((again / "metrics.json").read_text()) == saved
    sources = (again / ".hydra" / "hydra.yaml").read_text()
    assert str(project / "my_conf") in sources

    bigmodel(project, "train", f"resume={run}", "trainer.max_epochs=2")
    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert (checkpoint["epoch"], resumed["epoch"]) == (0, 1), "one more epoch, in the run's own directory"
    assert set(resumed["state_dict"]) == set(checkpoint["state_dict"])
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def error_line(cli, *args: str) -> str:
    code, out, err = cli(*args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in out + err, (code, out, err)
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # The typo's line lists the user's options among the built-in ones.
        (["model=tiny_nett"], ["did you mean model=tiny_net?", "cnn", "bag_of_words", "tiny_net"]),
        (["model=tiny_net", "data=bars"], ["my_pkg.models.TinyNet", "fix:", "allow_targets=[my_pkg.]"]),
        (  # model/data fit from the user's `modalities`, naming the user's models that fit
            ["model=bag_of_words", "data=bars", "allow_targets=[my_pkg.]"],
            ["model BagOfWords cannot read image data", "tiny_net", "cnn", "data that this model reads (text)"],
        ),
        (["model=tiny_net", "data=bars", "allow_targets=[my_pkg.]", "model.hidden=0"], ["model.hidden=0", "1 or more"]),
    ],
    ids=["typo", "allow_targets", "modalities", "range"],
)
def test_a_users_options_get_the_built_in_checks(cli, project, args, expected):
    line = error_line(cli, "train", "--config-dir", "my_conf", *args)
    for fragment in expected:
        assert fragment in line, f"{fragment!r} missing from {line!r}"


def test_help_and_completion_list_a_users_options(cli, project):
    code, out, _ = cli("--help", "--config-dir", "my_conf")
    assert code == 0 and "tiny_net" in out and "bars" in out
    code, out, _ = cli("train", "--config-dir", "my_conf", "--help")  # Hydra's help, from every dir
    assert code == 0 and "tiny_net" in out
    code, out, _ = cli("train", "--config-dir", "my_conf", "--help", "model=tiny_net")
    assert code == 0 and "model=tiny_net: my_conf/model/tiny_net.yaml" in out and "my_pkg.models.TinyNet" in out
    assert "model=tiny_net" in candidates("bigmodel train --config-dir my_conf model=t")
    assert "data=bars" in candidates("bigmodel train hydra.searchpath=[file://my_conf] data=b")
    assert "model.hidden=" in candidates("bigmodel train --config-dir my_conf model.hi")
    assert "model=tiny_net" not in candidates("bigmodel train model=t"), "only with the dir on the line"


def test_cp_copies_a_built_in_option(cli, in_tmp_cwd):
    code, out, _ = cli("cp", "model/cnn", "my_conf/model/my_cnn.yaml")
    copy = in_tmp_cwd / "my_conf" / "model" / "my_cnn.yaml"
    assert code == 0 and "bigmodel train --config-dir my_conf model=my_cnn" in out
    assert copy.read_text() == (Path(__file__).resolve().parents[2] / "conf" / "model" / "cnn.yaml").read_text()
    copy.write_text("# mine\n")
    assert "--force" in error_line(cli, "cp", "model/cnn", str(copy)) and copy.read_text() == "# mine\n"
    assert cli("cp", "model/cnn", str(copy), "--force")[0] == 0 and "_target_" in copy.read_text()
    assert cli("cp", "train", "my_conf/")[0] == 0 and (in_tmp_cwd / "my_conf" / "train.yaml").is_file()
    assert "warning: model=cnn picks the built-in one" in cli("cp", "model/cnn", "my_conf/model/")[1]

    line = error_line(cli, "cp", "model/cnnn", "x.yaml")
    assert "model/cnnn is not an option; did you mean model/cnn?" in line and "mlp" in line
    line = error_line(cli, "cp", "modl/cnn", "x.yaml")
    assert "modl is not a config group; did you mean model?" in line and "optimizer" in line
    (in_tmp_cwd / "a_file").write_text("")
    line = error_line(cli, "cp", "model/cnn", "a_file/x.yaml")
    assert line.startswith("error: cp: cannot write a_file/x.yaml") and "fix:" in line
