"""Carving val/test out of a training set: a seeded split every data module shares."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset

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
    rest, part = order[cut:], order[:cut]
    if isinstance(dataset, TensorImages):  # stay a whole tensor, so fast paths can use it
        return (
            TensorImages(dataset.images[rest], dataset.labels[rest]),
            TensorImages(dataset.images[part], dataset.labels[part]),
        )
    return Subset(dataset, rest.tolist()), Subset(dataset, part.tolist())


def labels_of(dataset: Dataset) -> torch.Tensor:
    if isinstance(dataset, TensorImages):
        return dataset.labels
    return torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))])


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
    index = torch.cat(kept).sort().values
    if isinstance(dataset, TensorImages):
        return TensorImages(dataset.images[index], dataset.labels[index])
    return Subset(dataset, index.tolist())


def check_split_seed(split_seed) -> int:
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
        raise UserError(
            f"data.split_seed={split_seed} is not valid: it must be an integer, 0 or more (the seed "
            f"that carves val/test out of train, apart from the run's seed); fix: data.split_seed=0"
        )
    return split_seed
