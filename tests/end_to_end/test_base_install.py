"""The base install (no extras) keeps scipy, matplotlib and scikit-learn off the start-up path:
torchmetrics, which Lightning imports at start-up, imports scipy.signal and matplotlib.pyplot
whenever they are installed (about 1 s a run). In an environment of this one's packages minus those
three (scripts/base_install.py), the default `bigmodel train debug=fdr` runs, on the digits shipped
in the package, and imports none of them; the plots say in one line how to get them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
HIDDEN = ("scipy", "matplotlib", "sklearn")

PROBE = """
import json, sys
from bigmodel_cli.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print("IMPORTED " + json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"scipy", "matplotlib", "sklearn"})))
"""

pytestmark = pytest.mark.xdist_group("base_install")  # pytest -n: one base venv, one worker


@pytest.fixture(scope="module")
def base_python(tmp_path_factory) -> Path:
    return load_script("base_install").make_base_venv(tmp_path_factory.mktemp("base") / "venv")


def run(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_base_environment_hides_the_three_from_imports_and_metadata(base_python, tmp_path):
    check = (
        "import importlib.util, importlib.metadata as m, json\n"
        "modules = ('scipy', 'matplotlib', 'sklearn', 'torch', 'pytorch_lightning')\n"
        "dists = {d.metadata['Name'].lower() for d in m.distributions()}\n"
        "print(json.dumps({'modules': [n for n in modules if importlib.util.find_spec(n)],"
        " 'dists': sorted(dists & {'scipy', 'matplotlib', 'scikit-learn', 'torch', 'pytorch-lightning'})}))"
    )
    result = run(base_python, tmp_path, "-c", check)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "modules": ["torch", "pytorch_lightning"],
        "dists": ["pytorch-lightning", "torch"],
    }


@pytest.mark.slow
def test_default_fdr_in_the_base_install_imports_no_scipy_matplotlib_or_sklearn(base_python, tmp_path):
    result = run(base_python, tmp_path, "-c", PROBE, "train", "debug=fdr")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("IMPORTED ")]
    assert json.loads(line.removeprefix("IMPORTED ")) == []
    (run_dir,) = (tmp_path / "outputs" / "train").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"

    # bigmodel report there: the tables, and one note line for the plots.
    report = run(base_python, tmp_path, "-c", PROBE, "report", "outputs/train")
    assert report.returncode == 0, report.stderr
    assert "note: plots skipped: matplotlib is not installed (fix: pip install 'bigmodel-cli[plots]')" in report.stdout


def test_the_dev_install_still_has_them():
    """.[dev] installs the plots extra and scikit-learn (the tests comparing the digits use it)."""
    import importlib.util

    assert all(importlib.util.find_spec(name) is not None for name in HIDDEN), sys.path
