"""Text classification data: the vocabulary sees only training texts, Hugging Face datasets read from
local files in the library's own formats (save_to_disk folders, parquet), and the default (word)
tokenizer learns real short texts far better than the majority class."""

from __future__ import annotations

import ast
import csv
import importlib
import inspect
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from bigmodel_cli.data.text import TextDataModule
from bigmodel_cli.training.pieces import build_datamodule
from tests.conftest import FAST
from tests.support.data_files import FILLER, NEGATIVE, POSITIVE


def split_samples(dataset) -> list[tuple[list[int], int]]:
    return [(ids.tolist(), label) for ids, label in (dataset[i] for i in range(len(dataset)))]


def test_words_only_in_val_or_test_texts_are_unknown(compose_cfg, tmp_path):
    """Each text ends in a word of its own: it is in the vocabulary exactly when its text is a
    training text, whatever texts become val/test."""
    path = tmp_path / "tagged.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([(f"the film was {'good' if i % 2 else 'bad'} tag{i}", i % 2) for i in range(100)])
    with compose_cfg("train", ["data=text_csv", f"data.path={path}", "data.tokenizer=word", "data.min_freq=1"]) as cfg:
        dm = build_datamodule(cfg.data)
        dm.setup("fit")
    unk = dm.tokenizer.unk
    samples = {split: split_samples(dm.datasets[split]) for split in ("train", "val", "test")}
    assert {split: len(s) for split, s in samples.items()} == {"train": 72, "val": 8, "test": 20}
    assert all(ids[-1] != unk for ids, _ in samples["train"])
    assert all(ids[-1] == unk for split in ("val", "test") for ids, _ in samples[split])
    assert sum(token.startswith("tag") for token in dm.tokenizer.tokens) == 72
    assert all(ids[:3] == dm.tokenizer.encode("the film was") for s in samples.values() for ids, _ in s)


# --- Hugging Face datasets from local files in the library's own formats ---------------------------


def review_rows(count: int, num_classes: int, seed: int) -> dict[str, list]:
    rng = random.Random(seed)
    cues = POSITIVE + NEGATIVE
    per_class = len(cues) // num_classes
    labels = [rng.randrange(num_classes) for _ in range(count)]
    texts = [" ".join(rng.sample(FILLER, 4) + rng.sample(cues[c * per_class : (c + 1) * per_class], 2)) for c in labels]
    return {"text": texts, "label": labels}


@pytest.fixture
def recorded_text_splits(monkeypatch):
    """The (token ids, label) samples of each split of every TextDataModule set up, in order."""
    seen = []
    original_setup = TextDataModule.setup

    def recording_setup(self, stage=None):
        original_setup(self, stage)
        seen.append({split: split_samples(dataset) for split, dataset in self.datasets.items()})

    monkeypatch.setattr(TextDataModule, "setup", recording_setup)
    return seen


@pytest.mark.parametrize("layout", ["imdb-save_to_disk", "ag_news-save_to_disk", "imdb-parquet"])
def test_hugging_face_options_read_local_datasets(layout, cli, in_tmp_cwd, recorded_text_splits):
    import datasets

    option, kind = layout.split("-")
    num_classes = {"imdb": 2, "ag_news": 4}[option]
    written = {"train": review_rows(60, num_classes, 0), "test": review_rows(30, num_classes, 1)}
    if option == "ag_news":  # a split of its own for validation
        written["validation"] = review_rows(12, num_classes, 2)
    if option == "imdb":  # imdb's own third split: unlabelled (-1), not for classification
        written["unsupervised"] = {"text": ["an unlabelled review"] * 5, "label": [-1] * 5}
    dataset = datasets.DatasetDict({name: datasets.Dataset.from_dict(rows) for name, rows in written.items()})
    if kind == "save_to_disk":
        dataset.save_to_disk(str(in_tmp_cwd / "saved"))
        paths = [f"data.path={in_tmp_cwd / 'saved'}"]
    else:
        dataset["train"].to_parquet(str(in_tmp_cwd / "train.parquet"))
        dataset["test"].to_parquet(str(in_tmp_cwd / "test.parquet"))
        paths = [f"data.path={in_tmp_cwd / 'train.parquet'}", f"data.test_path={in_tmp_cwd / 'test.parquet'}"]

    code, _, err = cli("train", "model=rnn", f"data={option}", *paths, "data.min_freq=1", *FAST)
    assert code == 0, err
    loaded = recorded_text_splits[-1]
    assert [label for _, label in loaded["test"]] == written["test"]["label"]
    train_labels = [label for _, label in loaded["train"]]
    if option == "ag_news":
        assert [label for _, label in loaded["val"]] == written["validation"]["label"]
        assert sorted(train_labels) == sorted(written["train"]["label"])
    else:  # val carved from train
        assert len(loaded["train"]) + len(loaded["val"]) == 60
        assert Counter(train_labels + [label for _, label in loaded["val"]]) == Counter(written["train"]["label"])
    assert set(loaded) == {"train", "val", "test"}
    runs = list((in_tmp_cwd / "outputs" / "train").iterdir())
    assert json.loads((runs[0] / "run.json").read_text())["status"] == "completed"


def test_a_folder_that_is_not_a_saved_dataset_is_a_clear_error(cli, in_tmp_cwd):
    (in_tmp_cwd / "empty").mkdir()
    code, _, err = cli("train", "model=rnn", "data=imdb", f"data.path={in_tmp_cwd / 'empty'}", *FAST)
    assert code == 2 and "data.path=" in err and "save_to_disk" in err


# --- the default tokenizer on real text -------------------------------------------------------------

# Two kinds of real English: sentences of the docstrings of Python's own arithmetic modules and of
# its network-protocol modules (they ship with every Python, so this works offline).
KINDS = {
    "arithmetic": ("_pydecimal", "statistics", "fractions"),
    "networking": ("smtplib", "imaplib", "ftplib", "http.client", "email.message"),
}


def docstring_sentences(module_name: str) -> list[str]:
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    sentences = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join((doc or "").split())):
                if len(sentence.split()) >= 4 and not sentence.startswith(">>>"):
                    sentences.append(sentence)
    return sentences


def write_docstring_csv(path: Path, per_class: int = 500) -> None:
    rows = []
    for kind, modules in KINDS.items():
        sentences = sorted({s for module in modules for s in docstring_sentences(module)})
        random.Random(0).shuffle(sentences)
        assert len(sentences) >= per_class
        rows += [(sentence, kind) for sentence in sentences[:per_class]]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def test_text_csv_defaults_learn_real_sentences(cli, in_tmp_cwd, compose_cfg):
    """With the text_csv defaults (word tokens), a small transformer tells the two kinds of sentences
    apart far above the majority class within a few epochs (bytes reach about 0.6 here)."""
    path = in_tmp_cwd / "docstrings.csv"
    write_docstring_csv(path)
    with compose_cfg("train", ["data=text_csv", f"data.path={path}"], name="probe") as cfg:
        dm = build_datamodule(cfg.data)
        dm.setup("fit")
    test_labels = [label for _, label in split_samples(dm.datasets["test"])]
    majority = max(Counter(test_labels).values()) / len(test_labels)

    # Three epochs on sentences cut at 48 words keep this short; the tokenizer settings are the defaults.
    code, _, err = cli(
        "train",
        "model=transformer",
        "data=text_csv",
        f"data.path={path}",
        "data.max_length=48",
        "trainer.max_epochs=3",
        "run_name=words",
    )
    assert code == 0, err
    metrics = json.loads((in_tmp_cwd / "outputs" / "train" / "words" / "metrics.json").read_text())
    assert metrics["test/acc"] >= majority + 0.2, (metrics["test/acc"], majority)
