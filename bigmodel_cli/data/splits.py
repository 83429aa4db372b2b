"""Carving val/test out of a training set: seeded splits every data module shares, the k folds
of `data.folds` / `data.fold` (cross-validation: one fold of the training pool validates), and the
class subset of `data.classes` (applied to every split before any carving, so splits stay stratified)."""

from __future__ import annotations

import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from bigmodel_cli.data.tensor_images import TensorImages
from bigmodel_cli.errors import UserError


def split_off(dataset: Dataset, fraction: float, generator: torch.Generator) -> tuple[Dataset, Dataset]:
    """Seeded random split into (rest, part) where part holds `fraction` of the samples."""
    order = torch.randperm(len(dataset), generator=generator)
    cut = int(round(len(dataset) * fraction))
    if cut == 0 or cut == len(dataset):
        raise UserError(
            f"a split fraction of {fraction} leaves an empty split of {len(dataset)} samples; "
            f"fix: choose a fraction strictly between {1 / len(dataset):.4f} and {1 - 1 / len(dataset):.4f}"
        )
    return take(dataset, order[cut:]), take(dataset, order[:cut])


def take(dataset: Dataset, index: torch.Tensor) -> Dataset:
    if isinstance(dataset, TensorImages):  # stay a whole tensor, so fast paths can use it
        return TensorImages(dataset.images[index], dataset.labels[index])
    return Subset(dataset, index.tolist())


def joined(train: Dataset, val: Dataset | None) -> Dataset:
    """The training pool the folds are cut from: a source's own val split joins its train split."""
    if val is None:
        return train
    if isinstance(train, TensorImages) and isinstance(val, TensorImages):
        return TensorImages(torch.cat([train.images, val.images]), torch.cat([train.labels, val.labels]))
    return ConcatDataset([train, val])


def labels_of(dataset: Dataset) -> torch.Tensor:
    if isinstance(dataset, TensorImages):
        return dataset.labels
    if getattr(dataset, "targets", None) is not None:  # torchvision's folders: no image read
        return torch.as_tensor(dataset.targets)
    return torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))])


def check_folds(folds, fold) -> None:
    if folds is None:
        return
    for key, value, least in (("folds", folds, 2), ("fold", fold, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UserError(
                f"data.{key}={value} is not valid: it must be an integer, {least} or more; "
                f"fix: e.g. data.folds=5 data.fold=0 (fold 0 of 5 validates)"
            )
    if fold >= folds:
        raise UserError(
            f"data.fold={fold} is not one of the {folds} folds (0 to {folds - 1}); "
            f"fix: data.fold=0 ... data.fold={folds - 1}, or cv={folds} for all of them"
        )


def fold_positions(count: int, folds: int, fold: int, generator: torch.Generator, labels=None):
    """(training positions, validation positions) in 0..count-1 for fold `fold` of `folds`.

    The positions are shuffled (seeded), grouped by label when labels are given, and dealt to the
    folds in turn: every fold holds its share of each class (stratified) and fold sizes differ by
    one at most. The same generator state gives the same folds, so fold k is the same samples in
    every run of a cross-validation."""
    if count < folds:
        raise UserError(
            f"data.folds={folds} needs at least {folds} training samples, the pool has {count}; fix: fewer folds"
        )
    order = torch.randperm(count, generator=generator)
    if labels is not None:
        order = order[torch.sort(torch.as_tensor(labels)[order], stable=True).indices]
    dealt = torch.arange(count) % folds
    return order[dealt != fold].sort().values, order[dealt == fold].sort().values


def keep_fraction(dataset: Dataset, fraction: float, generator: torch.Generator) -> Dataset:
    """A seeded, stratified `fraction` of the samples (each class keeps round(fraction x its
    count), at least one): the small labeled set of a low-label experiment."""
    if not 0.0 < fraction <= 1.0:
        raise UserError(
            f"data.train_fraction={fraction} is not in (0, 1]; fix: e.g. data.train_fraction=0.1 "
            f"for 10% of the training labels, 1.0 for all"
        )
    if fraction == 1.0:
        return dataset
    labels = labels_of(dataset)
    kept = []
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        kept.append(members[: max(1, round(len(members) * fraction))])
    return take(dataset, torch.cat(kept).sort().values)


class Relabelled(Dataset):
    """The samples at `positions` of a dataset, with new labels (a class subset)."""

    def __init__(self, dataset: Dataset, positions: list[int], labels: list[int]):
        self.dataset, self.positions, self.targets = dataset, positions, labels

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int):
        return self.dataset[self.positions[index]][0], self.targets[index]


def check_classes(classes, num_classes: int) -> list | None:
    """data.classes: null (every class), or a list of distinct labels whose length is num_classes."""
    if classes is None:
        return None
    classes = list(classes)
    if len(classes) < 2 or len({str(c) for c in classes}) != len(classes):
        raise UserError(
            f"data.classes={classes} is not valid: it must name 2 or more distinct classes; "
            f"fix: e.g. data.classes=[0,2,4] data.num_classes=3, or data.classes=null for all"
        )
    if num_classes != len(classes):
        raise UserError(
            f"data.classes names {len(classes)} classes but data.num_classes={num_classes}; "
            f"fix: data.num_classes={len(classes)}"
        )
    return classes


def class_positions(labels, classes: list) -> tuple[list[int], list[int]]:
    """(positions of the samples whose label is one of `classes`, their new labels 0..k-1 in the
    order of `classes`). Labels compare as text, so [0,1] and ['0','1'] mean the same classes."""
    index = {str(c): i for i, c in enumerate(classes)}
    kept = [(p, index[str(label)]) for p, label in enumerate(labels) if str(label) in index]
    return [p for p, _ in kept], [label for _, label in kept]


def keep_classes(dataset: Dataset, classes: list | None, split: str = "train") -> Dataset:
    """Only the samples of `classes`, relabelled 0..k-1 in their order (data.classes)."""
    if classes is None:
        return dataset
    labels = labels_of(dataset).tolist()
    missing = [str(c) for c in classes if str(c) not in {str(label) for label in labels}]
    if missing and split == "train":
        raise UserError(
            f"data.classes names {', '.join(missing)}, which the training split does not have (its labels: "
            f"{', '.join(map(str, sorted(set(labels))[:20]))}); fix: data.classes=[<class indices>]"
        )
    positions, new = class_positions(labels, classes)
    if isinstance(dataset, TensorImages):
        return TensorImages(dataset.images[torch.as_tensor(positions, dtype=torch.long)], torch.as_tensor(new))
    return Relabelled(dataset, positions, new)


def check_split_seed(split_seed) -> int:
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
        raise UserError(
            f"data.split_seed={split_seed} is not valid: it must be an integer, 0 or more (the seed "
            f"that carves val/test out of train, apart from the run's seed); fix: data.split_seed=0"
        )
    return split_seed
