"""Masked-LM pretraining (model=bert, data=text_corpus) and fine-tuning from it: the masking rule's
proportions, the tokenizer travelling with the checkpoint into a classification run (the same
vocabulary, the MLM head unused, a new classifier), and a tokenizer mismatch as one line."""

from __future__ import annotations

import csv
import inspect
import json
import subprocess

import pytest
import torch

from bigmodel_cli.commands import train
from bigmodel_cli.data.corpus import SPECIALS
from bigmodel_cli.errors import UserError
from bigmodel_cli.lightning_modules.masked_lm import IGNORE, MASK_ID, mask_tokens
from tests.conftest import FAST


def test_masking_rule_proportions():
    vocab = 1000
    ids = torch.randint(len(SPECIALS), vocab, (400, 128))
    ids[:, 100:] = 0  # padding is never selected
    inputs, targets = mask_tokens(ids, vocab, generator=torch.Generator().manual_seed(0))
    selected = targets != IGNORE
    real = ids != 0
    assert not selected[~real].any()
    assert selected.sum() / real.sum() == pytest.approx(0.15, abs=0.005)
    masked = (inputs == MASK_ID) & selected
    kept = (inputs == ids) & selected
    randomised = selected & ~masked & ~kept
    n = selected.sum().item()
    assert masked.sum().item() / n == pytest.approx(0.8, abs=0.01)
    # a random word equals the original 1 time in ~1000: "kept" is 10% plus that sliver
    assert kept.sum().item() / n == pytest.approx(0.1, abs=0.01)
    assert randomised.sum().item() / n == pytest.approx(0.1, abs=0.01)
    assert torch.equal(targets[selected], ids[selected]) and torch.equal(inputs[~selected], ids[~selected])


def write_corpus(root) -> str:
    """Real text: the sources of a few standard-library modules, one file each."""
    root.mkdir()
    for module in (json, csv, inspect, subprocess):
        (root / f"{module.__name__}.txt").write_text(inspect.getsource(module))
    return str(root / "*.txt")


def write_labeled(path) -> None:
    rows = [
        (line.strip(), name)
        for name, m in (("json", json), ("csv", csv))
        for line in inspect.getsource(m).splitlines()
        if len(line.split()) > 3
    ]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def test_bert_pretraining_then_fine_tuning_shares_the_vocabulary(compose_cfg, tmp_path, capsys, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus")
    pretrain = [
        "model=bert",
        "data=text_corpus",
        f"data.path='{corpus}'",
        "data.vocab_size=500",
        "data.val_fraction=0.25",
        "data.test_fraction=0.25",
        *FAST,
    ]
    with compose_cfg("train", pretrain, name="pretrained") as cfg:
        metrics = train.run(cfg)
        source = cfg.paths.output_dir
    assert {"val/loss", "val/acc", "test/ppl"} <= set(metrics)
    checkpoint = torch.load(f"{source}/checkpoints/best.ckpt", weights_only=True)
    vocabulary = checkpoint["tokenizer"]["tokens"]
    assert vocabulary[:3] == list(SPECIALS) and len(vocabulary) == 500

    write_labeled(tmp_path / "labeled.csv")
    finetune = ["model=bert", "data=text_csv", f"data.path={tmp_path / 'labeled.csv'}", "data.max_length=64", *FAST]
    seen = {}
    build = train.build_datamodule

    def keep(*args, **kwargs):
        seen["data"] = build(*args, **kwargs)
        return seen["data"]

    monkeypatch.setattr(train, "build_datamodule", keep)
    with compose_cfg("train", [*finetune, "data.vocab_size=500", f"init_from={source}"], name="finetuned") as cfg:
        train.run(cfg)
    out = capsys.readouterr().out
    assert seen["data"].tokenizer.tokens == vocabulary  # the pretraining vocabulary, not a new one
    assert "backbone.mlm_head.weight" in out and "unused" in out and "new (not in the checkpoint)" in out
    with compose_cfg("train", [*finetune, f"init_from={source}"], name="mismatch") as cfg:
        with pytest.raises(
            UserError, match=r"word tokenizer of 500 tokens, this run's data.vocab_size=20000; fix: data.vocab_size=500"
        ):
            train.run(cfg)
