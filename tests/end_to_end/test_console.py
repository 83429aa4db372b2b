"""The console of `bigmodel train` with the defaults on, through the installed command: the run
header, the model summary, the progress bar on one line and the final table, and none of the
third-party banners and warnings (they are in train.log). DDP's console is checked in
training/test_distributed.py with the same rules."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.support.console import assert_quiet_console

pytestmark = pytest.mark.slow


def test_default_train_console_is_quiet_and_informative(tmp_path):
    env = {**os.environ, "COLUMNS": "80", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [shutil.which("bigmodel"), "train", "trainer.max_epochs=2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    console = result.stdout + result.stderr
    assert result.returncode == 0, console
    assert_quiet_console(console)
    assert "model    cnn (53.1 K parameters)" in console
    assert re.search(r"data     digits: [\d,]+ train / [\d,]+ val / [\d,]+ test, 10 classes", console), console
    # The summary lists the backbone's layers, not the loss or metric modules.
    assert "model: CNN" in console and "Conv2d" in console
    assert not any(word in console for word in ("CrossEntropyLoss", "RunningMean", "MetricCollection"))
    # No 17-digit floats anywhere.
    assert not re.search(r"\d\.\d{6,}", console), console
    # Everything kept off the console is in the job's log file.
    (run,) = (tmp_path / "outputs" / "train").iterdir()
    log = (run / "train.log").read_text()
    assert "GPU available" in log and "is deprecated" in log
    # The log file is the map from option to code: each piece built, by its _target_ (not on screen).
    for line in (
        "data: bigmodel_cli.data.image.ImageDataModule",
        "module: bigmodel_cli.lightning_modules.classifier.ClassificationModule around model bigmodel_cli.models.cnn.CNN",
        "callbacks.last_checkpoint: bigmodel_cli.callbacks.last_checkpoint.LatestCheckpoint",
        "logger.csv: pytorch_lightning.loggers.CSVLogger",
        "trainer: pytorch_lightning.Trainer with callbacks ResumeState, RunHeader,",
    ):
        assert line in log and line not in console, line
