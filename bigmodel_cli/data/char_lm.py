"""Language-modelling data from any text file(s): one long token stream cut into fixed-length
blocks; the tail of the stream is held out for validation and test (no shuffling across the cut).

A sample is (ids[t : t+block], ids[t+1 : t+block+1]): next-token targets. Byte level needs no
vocabulary; character level counts the characters of the training part (capped at vocab_size,
the rest mapped to <unk>, id 0). With no path given, the source of Python's own `argparse` module
is the text: it ships with every Python, so the default works offline.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset

from bigmodel_cli.data.loaders import SplitLoaders
from bigmodel_cli.data.tokenizers import UNK, ByteTokenizer, Vocabulary, check_kind
from bigmodel_cli.errors import UserError


def default_text_path() -> str:
    import argparse

    return inspect.getsourcefile(argparse)


def read_texts(path) -> str:
    paths = [default_text_path()] if not path else [path] if isinstance(path, str) else list(path)
    texts = []
    for p in map(Path, paths):
        if not p.is_file():
            raise UserError(
                f"data.path={p} does not exist; fix: give a text file (or a list of them), "
                f"or data.path=null for the built-in text"
            )
        texts.append(p.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(texts)


class Blocks(Dataset):
    """Non-overlapping (input, target) blocks of a token stream."""

    def __init__(self, ids: torch.Tensor, block_size: int):
        self.ids, self.block_size = ids, block_size

    def __len__(self) -> int:
        return max(0, (len(self.ids) - 1) // self.block_size)

    def __getitem__(self, index: int):
        start = index * self.block_size
        chunk = self.ids[start : start + self.block_size + 1]
        return chunk[:-1], chunk[1:]


class CharLMDataModule(SplitLoaders, pl.LightningDataModule):
    def __init__(
        self,
        path=None,
        level: str = "byte",
        block_size: int = 128,
        vocab_size: int = 256,
        batch_size: int = 32,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        num_workers: int = 0,
        seed: int = 0,
        modality: str = "tokens",
        task: str = "language_modeling",
        num_classes: int | None = None,
        folds: int | None = None,
        fold: int = 0,
    ):
        # num_classes mirrors vocab_size (one class per next token) for code that reads it.
        super().__init__()
        check_kind(level, ("byte", "char"))
        if level == "byte" and vocab_size != 256:
            raise UserError(
                f"data.vocab_size={vocab_size} but byte level has 256 ids; fix: data.vocab_size=256, "
                f"or data.level=char for a vocabulary of at most data.vocab_size characters"
            )
        self.path, self.level, self.block_size, self.vocab_size = path, level, block_size, vocab_size
        self.num_classes = vocab_size
        self.keep_settings(batch_size, num_workers, seed, val_fraction, test_fraction, modality, task, folds, fold)
        self.tokenizer = ByteTokenizer(offset=0) if level == "byte" else None

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        text = read_texts(self.path)
        val_start = int(len(text) * (1 - self.val_fraction - self.test_fraction))
        test_start = int(len(text) * (1 - self.test_fraction))
        parts = {"train": text[:val_start], "val": text[val_start:test_start], "test": text[test_start:]}
        if self.folds:  # cross-validation: k contiguous stretches of the text before the test part
            ends = [test_start * i // self.folds for i in range(self.folds + 1)]
            start, end = ends[self.fold], ends[self.fold + 1]
            parts |= {"train": text[:start] + text[end:test_start], "val": text[start:end]}
        if self.tokenizer is None:
            self.tokenizer = Vocabulary.build([parts["train"]], "char", self.vocab_size, specials=(UNK,))
        for split, part in parts.items():
            blocks = Blocks(torch.tensor(self.tokenizer.encode(part), dtype=torch.long), self.block_size)
            if len(blocks) == 0:
                raise UserError(
                    f"the {split} split has {len(part)} characters, fewer than data.block_size="
                    f"{self.block_size} + 1; fix: a smaller data.block_size, a larger "
                    f"data.{split}_fraction, or a longer text"
                )
            self.datasets[split] = blocks

    def example_input(self, batch: int = 2) -> torch.Tensor:
        return torch.zeros(batch, self.block_size, dtype=torch.long)
