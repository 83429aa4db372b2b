"""Unlabeled text for masked-language-model pretraining (data=text_corpus): text files read from a
path or glob, split by file into train/val/test (seeded), a word vocabulary counted on the train
files, each split cut into blocks of max_length token ids.

With no path given, the corpus is the source of Python's standard library (its top-level modules):
it exists on every machine with Python, so pretraining runs offline on a fresh machine.
"""

from __future__ import annotations

import glob
import sysconfig
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset

from bigmodel_cli.console import slow_progress
from bigmodel_cli.data.loaders import SplitLoaders
from bigmodel_cli.data.splits import check_split_seed, fold_positions
from bigmodel_cli.data.tokenizers import MASK, PAD, UNK, Vocabulary
from bigmodel_cli.errors import UserError

# The vocabulary's special tokens, in id order (masking in lightning_modules/masked_lm relies on it).
SPECIALS = (PAD, UNK, MASK)


def corpus_files(path) -> list[Path]:
    """The files of data.path (a file, a glob or a list of them); null: Python's stdlib sources."""
    patterns = (
        [str(Path(sysconfig.get_paths()["stdlib"]) / "*.py")]
        if not path
        else [path]
        if isinstance(path, str)
        else list(path)
    )
    files = sorted({Path(f) for pattern in patterns for f in glob.glob(str(pattern)) if Path(f).is_file()})
    if not files:
        raise UserError(
            f"data.path={path} matches no file; fix: give a text file, a glob such as 'corpus/*.txt', "
            f"or data.path=null for Python's standard library sources"
        )
    return files


class TokenBlocks(Dataset):
    """Non-overlapping blocks of `length` token ids (the tail shorter than a block is dropped)."""

    def __init__(self, ids: torch.Tensor, length: int):
        self.blocks = ids[: len(ids) // length * length].view(-1, length)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.blocks[index]


class TextCorpusDataModule(SplitLoaders, pl.LightningDataModule):
    def __init__(
        self,
        path=None,
        vocab_size: int = 8000,
        min_freq: int = 2,
        max_length: int = 64,
        batch_size: int = 64,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        num_workers: int = 0,
        seed: int = 0,
        split_seed: int = 0,
        modality: str = "text",
        task: str = "masked_lm",
        num_classes: int | None = None,
        folds: int | None = None,
        fold: int = 0,
    ):
        # num_classes mirrors vocab_size (a masked token is one of the vocabulary) for code that reads it.
        super().__init__()
        self.path, self.vocab_size, self.min_freq, self.max_length = path, vocab_size, min_freq, max_length
        self.num_classes = vocab_size
        self.split_seed = check_split_seed(split_seed)
        self.keep_settings(batch_size, num_workers, seed, val_fraction, test_fraction, modality, task, folds, fold)
        self.tokenizer = None  # built on the train files in setup; init_from may hand one over

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        files = corpus_files(self.path)
        generator = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(len(files), generator=generator).tolist()
        n_val, n_test = (max(1, round(len(files) * f)) for f in (self.val_fraction, self.test_fraction))
        if len(files) < n_val + n_test + 1:
            raise UserError(
                f"data.path={self.path} has {len(files)} file(s); a train, val and test split need at least "
                f"{n_val + n_test + 1}; fix: give more files (a glob), or split a long file into several"
            )
        chosen = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
        if self.folds:  # cross-validation: the test files stay, the folds are cut from the other files
            pool = chosen["val"] + chosen["train"]
            train, val = fold_positions(len(pool), self.folds, self.fold, generator)
            chosen["train"], chosen["val"] = [pool[i] for i in train], [pool[i] for i in val]
        self.split_files = {
            split: [files[i] for i in index] for split, index in chosen.items()
        }  # which file went where
        texts = {
            split: [path.read_text(encoding="utf-8", errors="replace") for path in paths]
            for split, paths in self.split_files.items()
        }
        if self.tokenizer is None:
            self.tokenizer = Vocabulary.build(texts["train"], "word", self.vocab_size, self.min_freq, specials=SPECIALS)
        for split, docs in texts.items():
            ids = [
                i
                for doc in slow_progress(docs, f"tokenising the {split} split", len(docs))
                for i in self.tokenizer.encode(doc)
            ]
            blocks = TokenBlocks(torch.tensor(ids, dtype=torch.long), self.max_length)
            if len(blocks) == 0:
                raise UserError(
                    f"the {split} split has {len(ids)} tokens, fewer than data.max_length={self.max_length}; "
                    f"fix: a smaller data.max_length or more text"
                )
            self.datasets[split] = blocks
        # What the header reports from here on: the vocabulary the text really has (data.vocab_size,
        # the model's output size, which probe() checked before setup, only caps it).
        self.num_classes = self.tokenizer.size

    def example_input(self, batch: int = 2) -> torch.Tensor:
        return torch.full((batch, self.max_length), len(SPECIALS), dtype=torch.long)
