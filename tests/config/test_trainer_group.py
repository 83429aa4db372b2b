"""The trainer group is Lightning's Trainer: every argument of `Trainer.__init__` is a key with
Lightning's default (bigmodel's own values noted), written by scripts/trainer_group.py, so a
Lightning upgrade that adds an argument fails here until the group has it. The keys bigmodel reads
itself work as a user types them: trainer.max_steps alone ends the run, and a schedule over the
whole run follows it."""

from __future__ import annotations

import csv
import inspect
import math

import pytest
import torch
import yaml

from bigmodel_cli.config.contracts import TRAINER_OWNED
from tests.support.scripts import load_script


def generator():
    return load_script("trainer_group")


def test_the_trainer_group_holds_every_trainer_argument_with_lightnings_default():
    import pytorch_lightning as pl

    script = generator()
    assert script.PATH.read_text() == script.render(), "run python scripts/trainer_group.py --write"
    node = yaml.safe_load(script.PATH.read_text())
    signature = {n: p.default for n, p in inspect.signature(pl.Trainer.__init__).parameters.items() if n != "self"}
    assert set(node) - {"_target_"} == set(signature) - set(TRAINER_OWNED)
    differ = {k: v for k, v in node.items() if k in signature and v != signature[k]}
    assert set(differ) == set(script.BIGMODEL), differ


def test_max_steps_alone_ends_the_run_and_a_whole_run_schedule_follows_it(cli, in_tmp_cwd):
    """`bigmodel train trainer.max_steps=50 scheduler=cosine`: 50 steps (more than the default
    10 epochs hold would be cut short; 50 is past epoch 2 of 21 steps), the cosine over those 50."""
    code, _, err = cli("train", "trainer.max_steps=50", "scheduler=cosine", "run_name=steps", "test_after_fit=false")
    assert code == 0, err
    run = in_tmp_cwd / "outputs" / "train" / "steps"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 50 and checkpoint["epoch"] == 2  # epochs did not end it
    (scheduler,) = checkpoint["lr_schedulers"]
    assert scheduler["T_max"] == 50 and scheduler["last_epoch"] == 50
    with open(run / "csv" / "metrics.csv", newline="") as f:
        rates = {int(r["step"]): float(r["lr-Adam"]) for r in csv.DictReader(f) if r.get("lr-Adam")}
    assert len(rates) >= 5, rates  # logged per step (every log_every_n_steps), not once per epoch
    lr0 = checkpoint["hyper_parameters"]["config"]["optimizer"]["lr"]
    for step, lr in rates.items():
        assert lr == pytest.approx(lr0 * (1 + math.cos(math.pi * step / 50)) / 2, rel=1e-5, abs=1e-9), step


def test_max_epochs_set_with_max_steps_keeps_both_limits(compose_cfg):
    with compose_cfg("train", ["trainer.max_steps=50"]) as cfg:
        assert cfg.trainer.max_epochs == -1
    with compose_cfg("train", ["trainer.max_steps=50", "trainer.max_epochs=1"]) as cfg:
        assert cfg.trainer.max_epochs == 1
    with compose_cfg("train", []) as cfg:
        assert cfg.trainer.max_epochs == 10 and cfg.trainer.max_steps == -1


@pytest.mark.parametrize(("key", "fix"), [("callbacks", "callbacks=<option>"), ("+trainer.logger", "logger=csv"),
                                          ("default_root_dir", "run_name=<name>"), ("+trainer.plugins", "trainer.precision")])  # fmt: skip
def test_a_trainer_argument_bigmodel_passes_is_one_line_naming_what_sets_it(key, fix, cli, in_tmp_cwd):
    override = f"{key}=x" if key.startswith("+") else f"trainer.{key}=x"
    code, out, err = cli("train", override)
    name = key.removeprefix("+trainer.")
    assert code == 2 and f"trainer.{name} is set by bigmodel, not through the trainer group; fix: {fix}" in err
    assert "Traceback" not in err
