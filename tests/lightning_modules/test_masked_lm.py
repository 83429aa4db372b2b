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
from bigmodel_cli.training import assembly
from bigmodel_cli.training.pieces import build_module, plain
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
    # random words are words: after the specials, inside the vocabulary
    assert int(inputs[randomised].min()) >= len(SPECIALS) and int(inputs[randomised].max()) < vocab
    small, _ = mask_tokens(ids.clamp(max=24), 25, generator=torch.Generator().manual_seed(0))
    assert int(small.max()) < 25
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
    build = assembly.build_datamodule

    def keep(*args, **kwargs):
        seen["data"] = build(*args, **kwargs)
        return seen["data"]

    monkeypatch.setattr(assembly, "build_datamodule", keep)
    with compose_cfg("train", [*finetune, "data.vocab_size=500", f"init_from={source}"], name="finetuned") as cfg:
        train.run(cfg)
    out = capsys.readouterr().out
    assert seen["data"].tokenizer.tokens == vocabulary  # the pretraining vocabulary, not a new one
    assert "backbone.mlm_head.weight" in out and "unused" in out and "new (not in the checkpoint)" in out
    with compose_cfg("train", [*finetune, "data.vocab_size=100", f"init_from={source}"], name="mismatch") as cfg:
        with pytest.raises(
            UserError,
            match=r"word tokenizer of 500 tokens, more than this run's data.vocab_size=100 holds; fix: data.vocab_size=500",
        ):
            train.run(cfg)


WORDS = [f"w{i}" for i in range(22)]


def write_small_corpus(root) -> str:
    """Four files of 22 distinct words: a vocabulary of 25 (with <pad>, <unk>, <mask>), far below
    data.vocab_size's default 8000."""
    import random

    root.mkdir()
    rng = random.Random(0)
    for i in range(4):
        (root / f"part{i}.txt").write_text(" ".join(rng.choice(WORDS) for _ in range(600)))
    return str(root / "*.txt")


def test_a_vocabulary_smaller_than_vocab_size_pretrains_and_fine_tunes_as_it_is(
    compose_cfg, tmp_path, capsys, monkeypatch
):
    """Pretraining: the header counts the 25 real tokens, and BERT's random-word replacement draws
    only ids of them. Fine-tuning: data.vocab_size=8000 (the pretraining's) is accepted and loads the
    embedding whole; data.vocab_size=25 loads the vocabulary's 25 rows instead of re-initialising;
    fewer than 25 is one line."""
    from bigmodel_cli.lightning_modules import masked_lm

    seen = []
    original = masked_lm.mask_tokens

    def spy(ids, vocab_size, *args, **kwargs):
        inputs, targets = original(ids, vocab_size, *args, **kwargs)
        seen.append(int(inputs.max()))
        return inputs, targets

    monkeypatch.setattr(masked_lm, "mask_tokens", spy)
    corpus = write_small_corpus(tmp_path / "corpus")
    pretrain = ["model=bert", "data=text_corpus", f"data.path='{corpus}'", "data.min_freq=1"]
    pretrain += ["data.val_fraction=0.25", "data.test_fraction=0.25", *FAST, "trainer.limit_train_batches=20"]
    with compose_cfg("train", pretrain, name="pretrained") as cfg:
        train.run(cfg)
        source = cfg.paths.output_dir
    out = capsys.readouterr().out
    assert "25 tokens in the vocabulary" in out and "8000 tokens" not in out
    checkpoint = torch.load(f"{source}/checkpoints/best.ckpt", weights_only=True)
    assert len(checkpoint["tokenizer"]["tokens"]) == 25
    assert seen and max(seen) < 25  # random words are words of the vocabulary, not ids past it
    pretrained = checkpoint["state_dict"]["backbone.embed.weight"]
    assert pretrained.shape[0] == 8000

    labeled = tmp_path / "labeled.csv"
    labeled.write_text("text,label\n" + "".join(f"{WORDS[i % 22]} {WORDS[(i * 7) % 22]},{i % 2}\n" for i in range(80)))
    finetune = ["model=bert", "data=text_csv", f"data.path={labeled}", "data.max_length=64", *FAST]
    kept = {}
    build, initialise = assembly.build_module, assembly.initialise_from

    def keep_module(*args, **kwargs):
        kept["module"] = build(*args, **kwargs)
        return kept["module"]

    def keep_transfer(*args, **kwargs):
        kept["transfer"] = initialise(*args, **kwargs)
        return kept["transfer"]

    monkeypatch.setattr(assembly, "build_module", keep_module)
    monkeypatch.setattr(assembly, "initialise_from", keep_transfer)
    for vocab_size in (8000, 25):
        overrides = [*finetune, f"data.vocab_size={vocab_size}", f"init_from={source}", "optimizer.lr=1e-9"]
        with compose_cfg("train", overrides, name=f"finetuned{vocab_size}") as cfg:
            train.run(cfg)
        transfer = kept["transfer"]
        assert "backbone.embed.weight" in transfer.loaded
        assert "backbone.embed.weight" not in [name for name, _, _ in transfer.reinitialised]
        embedding = kept["module"].backbone.embed.weight.detach()
        assert embedding.shape[0] == vocab_size
        assert torch.allclose(embedding[:25], pretrained[:25], atol=1e-5)  # lr ~0: still the pretrained rows
    with compose_cfg("train", [*finetune, "data.vocab_size=20", f"init_from={source}"], name="small") as cfg:
        with pytest.raises(
            UserError, match=r"word tokenizer of 25 tokens, more than .*=20 holds; fix: data.vocab_size=25"
        ):
            train.run(cfg)


def test_the_mlm_head_projects_the_masked_positions_only(compose_cfg, tmp_path):
    """A pretraining step runs the vocabulary-sized head on the masked tokens alone, with the loss
    and accuracy of projecting every token and selecting the masked ones."""
    corpus = write_corpus(tmp_path / "corpus")
    with compose_cfg("train", ["model=bert", "data=text_corpus", f"data.path={corpus}", *FAST]) as cfg:
        module = build_module(plain(cfg))
    ids = torch.randint(len(SPECIALS), 200, (4, 32))
    inputs, targets = mask_tokens(ids, 200, generator=torch.Generator().manual_seed(0))
    chosen = targets != IGNORE
    rows = []
    module.backbone.mlm_head.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[:-1].numel()))
    module.eval()
    with torch.no_grad():
        selected = module.masked_predictions(inputs, chosen)
        everywhere = module(inputs)[chosen]
    assert rows == [int(chosen.sum()), chosen.numel()]
    torch.testing.assert_close(selected, everywhere)
