"""init_from=<run>: exactly the tensors whose names and shapes match are loaded (and the table says
so), the classifier head only with init_head=pretrained (else, and where its shape differs, it keeps
its fresh initialisation), nothing else comes along; a checkpoint with nothing
that matches is one line naming both models. A fine-tuning run from a pretraining run also runs
from a fresh process through the installed `bigmodel` (linear probe: the loaded body never moves)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import torch
from rich.console import Console

from bigmodel_cli.commands import train
from bigmodel_cli.errors import UserError
from bigmodel_cli.training.init_from import class_head, head_choice, initialise_from, transfer_table
from bigmodel_cli.training.pieces import build_module, plain
from tests.conftest import FAST

# Two-class 8x8 images: the same CNN body as digits, a head for 2 classes instead of 10.
TWO_CLASSES = ["data=synthetic", "data.num_classes=2", "data.image_size=8"]


@pytest.fixture
def pretrained(compose_cfg):
    with compose_cfg("train", FAST, name="pretrained") as cfg:
        train.run(cfg)
        return cfg.paths.output_dir


def test_init_from_loads_exactly_the_matching_tensors(pretrained, compose_cfg):
    theirs = torch.load(f"{pretrained}/checkpoints/best.ckpt", weights_only=True)["state_dict"]
    with compose_cfg("train", [*TWO_CLASSES, *FAST, f"init_from={pretrained}"]) as cfg:
        module = build_module(plain(cfg))
        fresh = {k: v.clone() for k, v in module.state_dict().items()}
        transfer = initialise_from(module, pretrained, plain(cfg))
    ours = module.state_dict()
    matching = [k for k in ours if k in theirs and theirs[k].shape == ours[k].shape]
    head = ["backbone.head.2.weight", "backbone.head.2.bias"]  # matches, but init_head=fresh (the default)
    assert transfer.loaded == [k for k in matching if k not in head] and "backbone.features.0.weight" in matching
    assert transfer.new_head == head
    assert all(torch.equal(ours[k], theirs[k]) for k in transfer.loaded)
    assert [(n, t, o) for n, t, o in transfer.reinitialised] == [
        ("backbone.head.5.weight", (10, 128), (2, 128)),
        ("backbone.head.5.bias", (10,), (2,)),
    ]
    untouched = [*head, *(n for n, _, _ in transfer.reinitialised)]
    assert all(torch.equal(ours[n], fresh[n]) for n in untouched)  # left as initialised
    console = Console(width=200, record=True)
    console.print(transfer_table(transfer, pretrained))
    table = console.export_text()
    assert "backbone.features.* (12)" in table and "backbone.head.2.weight" in table and "fresh head" in table
    assert "[10, 128] -> [2, 128]" in table and "re-initialised" in table


def test_init_head_pretrained_loads_the_matching_head_too(pretrained, compose_cfg):
    theirs = torch.load(f"{pretrained}/checkpoints/best.ckpt", weights_only=True)["state_dict"]
    with compose_cfg("train", [*TWO_CLASSES, *FAST, f"init_from={pretrained}", "init_head=pretrained"]) as cfg:
        module = build_module(plain(cfg))
        transfer = initialise_from(module, pretrained, plain(cfg))
    assert "backbone.head.2.weight" in transfer.loaded and not transfer.new_head
    assert torch.equal(module.state_dict()["backbone.head.2.weight"], theirs["backbone.head.2.weight"])


def test_a_language_model_head_is_no_class_head(compose_cfg):
    """GPT's head projects onto the vocabulary (tied to its embedding): init_head never leaves it fresh."""
    with compose_cfg("train", ["model=gpt", "data=char_lm", *FAST]) as cfg:
        module = build_module(plain(cfg))
    assert class_head(module) is None


def test_misspelt_init_head_is_one_line(compose_cfg):
    with compose_cfg("train", [*FAST, "init_head=frozen"]) as cfg:
        with pytest.raises(UserError, match=r"init_head=frozen is not known; valid choices: fresh, pretrained"):
            head_choice(cfg)


def test_nothing_matching_names_both_models(pretrained, compose_cfg):
    with compose_cfg("train", ["model=mlp", *FAST]) as cfg:
        module = build_module(plain(cfg))
        with pytest.raises(UserError, match=r"none of the 16 tensors of its CNN matches a tensor of this run's MLP"):
            initialise_from(module, pretrained, plain(cfg))


def test_missing_source_is_one_line(compose_cfg, tmp_path):
    with compose_cfg("train", FAST) as cfg:
        module = build_module(plain(cfg))
        with pytest.raises(UserError, match="init_from=.*nowhere does not exist"):
            initialise_from(module, str(tmp_path / "nowhere"), plain(cfg))
        (tmp_path / "empty").mkdir()
        with pytest.raises(UserError, match="without checkpoints/best.ckpt"):
            initialise_from(module, str(tmp_path / "empty"), plain(cfg))


@pytest.mark.slow
def test_fine_tuning_from_a_pretraining_run_through_the_installed_command(pretrained, tmp_path):
    argv = [shutil.which("bigmodel"), "train", *TWO_CLASSES, *FAST, f"init_from={pretrained}", "finetune=linear_probe"]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "init_from" in result.stdout and "re-initialised" in result.stdout
    (run,) = (tmp_path / "outputs" / "train").iterdir()
    record = json.loads((run / "run.json").read_text())["init_from"]
    assert record["reinitialised"] == ["backbone.head.5.weight", "backbone.head.5.bias"]
    assert record["new_head"] == ["backbone.head.2.weight", "backbone.head.2.bias"]
    before = torch.load(f"{pretrained}/checkpoints/best.ckpt", weights_only=True)["state_dict"]
    after = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    body = [k for k in before if k.startswith("backbone.features.")]
    assert body and all(torch.equal(before[k], after[k]) for k in body)  # frozen, BN statistics too
    assert not torch.equal(before["backbone.head.2.weight"], after["backbone.head.2.weight"])  # the head trained
