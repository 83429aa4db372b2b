"""The LightningDataModule for text classification.

Texts become token ids (a word vocabulary built from the training split by default, or UTF-8
bytes), truncated to `max_length`; a batch is padded to its longest sequence with id 0, which models
treat as padding (masked in attention and pooling, packed away for RNNs).

Missing val/test splits are carved from the raw training texts first, with `split_seed` (fixed, not
the run's `seed`, so a seed sweep keeps one test set); only then is the word vocabulary counted, on
the training texts alone, so words seen only in val/test texts are unknown to the model.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset, Subset

from bigmodel_cli.console import slow_progress
from bigmodel_cli.data.loaders import SplitLoaders
from bigmodel_cli.data.splits import (
    check_classes,
    check_split_seed,
    class_positions,
    fold_positions,
    keep_fraction,
    split_off,
)
from bigmodel_cli.data.tokenizers import PAD, UNK, ByteTokenizer, Vocabulary, check_kind
from bigmodel_cli.errors import UserError

PAD_ID = 0
BYTE_VOCAB = 257  # 256 byte values shifted by one, id 0 is padding


class TokenSequences(Dataset):
    """(LongTensor of token ids, int label) pairs, with the texts they were read from (for
    baselines that read the same splits: texts_and_labels)."""

    def __init__(self, ids: list[list[int]], labels: list[int], texts: list[str]):
        self.ids, self.labels, self.texts = ids, labels, texts

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        return torch.tensor(self.ids[index], dtype=torch.long), self.labels[index]


def texts_and_labels(dataset: Dataset) -> tuple[list[str], list[int]]:
    """The raw texts and labels of a split: a TokenSequences, or Subsets of one."""
    positions = list(range(len(dataset)))
    while isinstance(dataset, Subset):
        positions, dataset = [dataset.indices[p] for p in positions], dataset.dataset
    return [dataset.texts[p] for p in positions], [dataset.labels[p] for p in positions]


def pad_batch(samples: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a list of (ids, label) to the longest sequence in it (at least one token)."""
    length = max(1, max(len(ids) for ids, _ in samples))
    batch = torch.full((len(samples), length), PAD_ID, dtype=torch.long)
    for row, (ids, _) in enumerate(samples):
        batch[row, : len(ids)] = ids
    return batch, torch.tensor([label for _, label in samples], dtype=torch.long)


def label_indices(splits: dict[str, tuple[list, list]], num_classes: int) -> dict[str, list[int]]:
    """Integer labels as they are; other labels numbered in sorted order of the training split's."""
    train_labels = splits["train"][1]
    if all(str(label).lstrip("-").isdigit() for _, labels in splits.values() for label in labels):
        mapped = {split: [int(label) for label in labels] for split, (_, labels) in splits.items()}
        found = max(max(labels) for labels in mapped.values()) + 1
        if min(min(labels) for labels in mapped.values()) < 0 or found > num_classes:
            raise UserError(
                f"labels go up to {found - 1} but data.num_classes={num_classes}; fix: data.num_classes={found}"
            )
        return mapped
    names = sorted({str(label) for label in train_labels})
    if len(names) != num_classes:
        raise UserError(
            f"the training split has {len(names)} label values ({', '.join(names[:10])}) but "
            f"data.num_classes={num_classes}; fix: data.num_classes={len(names)}"
        )
    index = {name: i for i, name in enumerate(names)}
    for split, (_, labels) in splits.items():
        unknown = sorted({str(label) for label in labels} - index.keys())
        if unknown:
            raise UserError(
                f"the {split} split has labels not in the training split: {', '.join(unknown[:5])}; "
                f"fix: give every split the same label values"
            )
    return {split: [index[str(label)] for label in labels] for split, (_, labels) in splits.items()}


def carve(count: int, missing: dict[str, float], split_seed: int, folds=None, labels=None) -> dict[str, list[int]]:
    """Positions (into the training texts) of what stays in train and of each missing split, drawn
    as for image data: test first, then val from the rest, from one generator seeded by split_seed.
    With folds=(k, fold), val is that fold of the rest, stratified by `labels` (cross-validation)."""
    positions = {"train": list(range(count))}
    generator = torch.Generator().manual_seed(split_seed)
    for split in ("test", "val"):
        if split in missing:
            rest, part = split_off(positions["train"], missing[split], generator)
            positions["train"], positions[split] = (
                [positions["train"][i] for i in subset.indices] for subset in (rest, part)
            )
    if folds is not None:
        pool = positions["train"]
        train, val = fold_positions(len(pool), *folds, generator, [labels[p] for p in pool])
        positions["train"], positions["val"] = [pool[i] for i in train], [pool[i] for i in val]
    return positions


class TextDataModule(SplitLoaders, pl.LightningDataModule):
    collate_fn = staticmethod(pad_batch)

    def __init__(
        self,
        source: Callable[[], dict],
        num_classes: int,
        vocab_size: int,
        max_length: int,
        tokenizer: str = "word",
        min_freq: int = 1,
        unk_token: str = UNK,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        num_workers: int = 0,
        seed: int = 0,
        split_seed: int = 0,
        modality: str = "text",
        task: str = "classification",
        train_fraction: float = 1.0,
        folds: int | None = None,
        fold: int = 0,
        classes: list | None = None,
        **source_settings,
    ):
        # source_settings (path, columns, ...) are read by `source` through interpolation; kept
        # here so the data config and this signature accept the same keys.
        super().__init__()
        check_kind(tokenizer, ("byte", "word"))
        if tokenizer == "byte" and vocab_size != BYTE_VOCAB:
            raise UserError(
                f"data.vocab_size={vocab_size} but the byte tokenizer has {BYTE_VOCAB} ids; "
                f"fix: data.vocab_size={BYTE_VOCAB}, or data.tokenizer=word to build a vocabulary "
                f"of at most data.vocab_size words"
            )
        self.source, self.num_classes, self.vocab_size, self.max_length = source, num_classes, vocab_size, max_length
        self.tokenizer_kind, self.min_freq, self.unk_token = tokenizer, min_freq, unk_token
        self.keep_settings(batch_size, num_workers, seed, val_fraction, test_fraction, modality, task, folds, fold)
        self.split_seed = check_split_seed(split_seed)
        self.train_fraction = float(train_fraction)
        self.classes = check_classes(classes, num_classes)
        self.tokenizer = ByteTokenizer(offset=1) if tokenizer == "byte" else None

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        splits = dict(self.source())
        if self.folds and "val" in splits:  # the source's own val split joins the pool of the folds
            (texts, labels), (val_texts, val_labels) = splits["train"], splits.pop("val")
            splits["train"] = ([*texts, *val_texts], [*labels, *val_labels])
        if self.classes is not None:
            splits = self.keep_classes(splits)
        labels = label_indices(splits, self.num_classes)
        # The missing val/test splits (or the folds) are carved out of the raw training texts first ...
        missing = {
            split: fraction
            for split, fraction in (("test", self.test_fraction), ("val", self.val_fraction))
            if split not in splits and not (split == "val" and self.folds)
        }
        folds = (self.folds, self.fold) if self.folds else None
        positions = carve(len(splits["train"][0]), missing, self.split_seed, folds, labels["train"])
        # ... and only then is the vocabulary counted, on what stays in train.
        if self.tokenizer is None:
            train_texts = [splits["train"][0][i] for i in positions["train"]]
            self.tokenizer = Vocabulary.build(
                train_texts,
                "word",
                self.vocab_size,
                self.min_freq,
                specials=(PAD, self.unk_token),
                unk_token=self.unk_token,
            )
        datasets: dict[str, Dataset] = {
            split: TokenSequences(
                [
                    self.tokenizer.encode(t)[: self.max_length]
                    for t in slow_progress(texts, f"tokenising the {split} split", total=len(texts))
                ],
                labels[split],
                texts,
            )
            for split, (texts, _) in splits.items()
        }
        pool = datasets["train"]
        datasets.update({split: Subset(pool, indices) for split, indices in positions.items()})
        # Low-label experiments: a stratified part of the training labels (val and test untouched).
        generator = torch.Generator().manual_seed(self.split_seed)
        datasets["train"] = keep_fraction(datasets["train"], self.train_fraction, generator)
        self.datasets = datasets

    def keep_classes(self, splits: dict) -> dict:
        """data.classes: only the texts of those labels, relabelled 0..k-1 in the order given."""
        missing = sorted({str(c) for c in self.classes} - {str(label) for label in splits["train"][1]})
        if missing:
            found = sorted({str(label) for label in splits["train"][1]})
            raise UserError(
                f"data.classes names {', '.join(missing)}, which the training split does not have; valid "
                f"choices: {', '.join(found[:20])} (fix: data.classes=[{','.join(found[:2])}])"
            )
        kept = {}
        for split, (texts, labels) in splits.items():
            positions, new = class_positions(labels, self.classes)
            kept[split] = ([texts[p] for p in positions], new)
        return kept

    def example_input(self, batch: int = 2) -> torch.Tensor:
        """A dummy batch of full-length sequences with no padding."""
        return torch.ones(batch, self.max_length, dtype=torch.long)
