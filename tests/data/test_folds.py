"""data.folds / data.fold: for every kind of data module, the K folds of the training pool are
disjoint and together the whole pool, each fold is validation once (stratified where there are
labels), the test split is the one the run without folds has, and bad values are one line."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from bigmodel_cli.errors import UserError
from bigmodel_cli.training.pieces import build_datamodule
from tests.support.data_files import write_image_folder, write_text_table

K = 3


def key(item, tokenizer):
    if isinstance(item, (tuple, list)):
        return tuple(key(i, tokenizer) for i in item)
    if isinstance(item, torch.Tensor):  # token ids as text: each fold counts its own vocabulary
        return tokenizer.decode(item.tolist()) if tokenizer is not None else tuple(item.flatten().tolist())
    return item


def samples(datamodule, split: str) -> Counter:
    if hasattr(datamodule, "split_files"):  # a corpus: whole files go to a split, blocks are cut after
        return Counter(datamodule.split_files[split])
    dataset, tokenizer = datamodule.datasets[split], getattr(datamodule, "tokenizer", None)
    return Counter(key(dataset[i], tokenizer) for i in range(len(dataset)))


def data_settings(kind: str, tmp_path: Path) -> list[str]:
    if kind == "imagefolder":
        write_image_folder(tmp_path / "folder")
        return ["data=imagefolder", f"data.root={tmp_path / 'folder'}", "data.num_classes=3", "data.image_size=16"]
    if kind == "text_csv":
        write_text_table(tmp_path / "text.csv", rows=120)
        return ["data=text_csv", f"data.path={tmp_path / 'text.csv'}", "data.min_freq=1", "data.num_classes=2"]
    if kind == "text_corpus":
        words = random.Random(0).choices("the a of cat dog runs sat on mat red blue big".split(), k=2400)
        (tmp_path / "corpus").mkdir()
        for i in range(8):
            (tmp_path / "corpus" / f"doc{i}.txt").write_text(" ".join(words[i * 300 : (i + 1) * 300]))
        return ["data=text_corpus", f"data.path='{tmp_path}/corpus/*.txt'", "data.min_freq=1", "data.max_length=16"]
    if kind == "char_lm":
        (tmp_path / "text.txt").write_text("".join(random.Random(0).choices("abcdefgh \n", k=6000)))
        return ["data=char_lm", f"data.path={tmp_path / 'text.txt'}", "data.block_size=16", "model=gpt"]
    return [f"data={kind}"]


def data(compose_cfg, overrides: list[str]):
    with compose_cfg("train", overrides) as cfg:
        datamodule = build_datamodule(cfg.data)
    datamodule.setup("fit")
    return datamodule


@pytest.mark.parametrize("kind", ["digits", "imagefolder", "text_csv", "text_corpus", "char_lm"])
def test_the_folds_partition_the_training_pool_and_leave_the_test_split(kind, compose_cfg, tmp_path):
    settings = data_settings(kind, tmp_path)
    plain = data(compose_cfg, settings)
    folds = [data(compose_cfg, [*settings, f"data.folds={K}", f"data.fold={k}"]) for k in range(K)]
    for fold in folds:
        assert samples(fold, "test") == samples(plain, "test"), "the test split changed with the folds"
    vals = [samples(fold, "val") for fold in folds]
    assert all(vals) and all(a != b for i, a in enumerate(vals) for b in vals[i + 1 :]), "two folds validate alike"
    if kind == "char_lm":  # contiguous stretches: blocks are cut after the split, so count tokens
        ids = [{split: len(d.datasets[split].ids) for split in ("train", "val")} for d in [plain, *folds]]
        pool = ids[0]["train"] + ids[0]["val"]
        assert all(n["train"] + n["val"] == pool for n in ids) and sum(n["val"] for n in ids[1:]) == pool
        return
    pool = samples(plain, "train") + samples(plain, "val")
    for fold, val in zip(folds, vals):
        assert samples(fold, "train") + val == pool, "a fold's train and val are not the pool"
    assert sum(vals, Counter()) == pool, "the folds are not disjoint or miss part of the pool"
    sizes = [sum(v.values()) for v in vals]
    assert max(sizes) - min(sizes) <= 1
    if kind in ("digits", "imagefolder", "text_csv"):  # stratified: each fold has its share of each class
        classes = Counter(label for sample, n in pool.items() for label in [sample[1]] * n)
        for val in vals:
            in_fold = Counter(label for sample, n in val.items() for label in [sample[1]] * n)
            assert all(abs(in_fold[c] - classes[c] / K) <= 1 for c in classes), (in_fold, classes)


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["data.folds=1"], "data.folds=1"),
        (["data.folds=3", "data.fold=3"], "data.fold=3"),
        (["data.folds=3", "data.fold=-1"], "data.fold=-1"),
    ],
)
def test_bad_folds_are_one_line(overrides, named, compose_cfg):
    from bigmodel_cli.config.validation import validate

    with pytest.raises(UserError) as raised:
        with compose_cfg("train", overrides) as cfg:
            validate(cfg)
            build_datamodule(cfg.data)
    line = str(raised.value)
    assert named in line and ("fix:" in line or "out of range: use" in line) and "\n" not in line, line
