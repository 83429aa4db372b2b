"""A non-editable install of the wheel works from an unrelated directory: conf/ ships inside it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_installs_and_trains_from_anywhere(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("bigmodel_cli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bigmodel_cli/conf/train.yaml" in names and "bigmodel_cli/conf/model/cnn.yaml" in names
    assert "bigmodel_cli/data/digits.npz" in names  # the default data, read without scikit-learn

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300
    )
    elsewhere = tmp_path / "somewhere_else"
    elsewhere.mkdir()
    located = subprocess.run(
        [venv / "bin" / "python", "-c", "import bigmodel_cli.config.catalogue as c; print(c.conf_dir())"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert located.stdout.strip().startswith(str(venv)), f"used {located.stdout.strip()}, not the installed wheel"

    result = subprocess.run(
        [venv / "bin" / "bigmodel", "train", "debug=fdr"], cwd=elsewhere, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (run,) = (elsewhere / "outputs" / "train").iterdir()
    assert (run / "run.json").is_file() and (run / "metrics.json").is_file()
