"""The LightningDataModule for image classification.

Datasets yield uint8 CHW images. Two ways to batch them (data.loader):
- `tensor` (default for in-memory datasets): each split stays one uint8 tensor on the training
  device, batches are slices of a seeded per-epoch permutation (TensorLoader), and the train
  augmentation runs on whole batches on the device (BatchAugment), with no DataLoader workers;
- `dataloader`: a torch DataLoader, with the train augmentation applied per sample on uint8.
Conversion to float and normalisation happen once per batch on the training device
(`on_after_batch_transfer`), the same for every split; batch-level mixing (mixup/cutmix) follows
on training batches, giving soft targets.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset

from bigmodel_cli.data.batch_augment import BatchAugment, batch_mixer, is_batch_level
from bigmodel_cli.data.loaders import SplitLoaders
from bigmodel_cli.data.splits import (
    check_classes,
    check_split_seed,
    fold_positions,
    joined,
    keep_classes,
    keep_fraction,
    labels_of,
    split_off,
    take,
)
from bigmodel_cli.data.tensor_images import TensorImages, TensorLoader, convert_image, convert_images
from bigmodel_cli.errors import UserError

SPLITS = ("train", "val", "test")
LOADERS = ("tensor", "dataloader")


class Transformed(Dataset):
    """Applies an image transform to each (image, label) of a dataset."""

    def __init__(self, dataset: Dataset, transform: Callable):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, label = self.dataset[index]
        return self.transform(image), label


class ImageDataModule(SplitLoaders, pl.LightningDataModule):
    def __init__(
        self,
        source: Callable[[], dict],
        num_classes: int,
        in_channels: int,
        image_size: int,
        mean: list[float],
        std: list[float],
        batch_size: int = 128,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        num_workers: int = 0,
        seed: int = 0,
        split_seed: int = 0,
        augmentation: dict | None = None,
        modality: str = "image",
        root: str | None = None,
        download: bool = False,
        loader: str = "dataloader",
        train_fraction: float = 1.0,
        folds: int | None = None,
        fold: int = 0,
        classes: list[int] | None = None,
    ):
        # root and download are read by `source` (through interpolation); kept here so the
        # data config and this signature list the same keys.
        super().__init__()
        self.source = source
        self.num_classes, self.in_channels, self.image_size = num_classes, in_channels, image_size
        # seed: the shuffle order (the run's seed); split_seed: which samples are carved out for val/test
        # (fixed, so runs with different seeds, and evaluating a checkpoint later, see the same splits).
        self.keep_settings(
            batch_size, num_workers, seed, val_fraction, test_fraction, modality, "classification", folds, fold
        )
        self.split_seed = check_split_seed(split_seed)
        if loader not in LOADERS:
            raise UserError(
                f"data.loader={loader} is not valid; valid choices: {', '.join(LOADERS)} "
                f"(fix: data.loader=tensor for in-memory datasets, else data.loader=dataloader)"
            )
        self.loader = loader
        self.train_fraction = float(train_fraction)
        self.classes = check_classes(classes, num_classes)
        transforms = [t for t in (augmentation or {}).values() if t is not None]
        self.augmentation = [t for t in transforms if not is_batch_level(t)]
        self.batch_augment = BatchAugment(self.augmentation) if loader == "tensor" and self.augmentation else None
        self.mixer = batch_mixer([t for t in transforms if is_batch_level(t)])
        self._set_normalisation(mean, std)

    def _set_normalisation(self, mean: list[float], std: list[float]) -> None:
        if len(mean) != self.in_channels or len(std) != self.in_channels:
            raise UserError(
                f"data.mean/data.std have {len(mean)}/{len(std)} values but data.in_channels="
                f"{self.in_channels}; fix: give one mean and one std per channel"
            )
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        splits = {name: self._to_configured_shape(dataset) for name, dataset in self.source().items()}
        # data.classes: a subset of the classes, relabelled 0..k-1, before any carving (stratified splits).
        splits = {name: keep_classes(dataset, self.classes, name) for name, dataset in splits.items()}
        self._check(splits["train"])
        generator = torch.Generator().manual_seed(self.split_seed)
        if "test" not in splits:
            splits["train"], splits["test"] = split_off(splits["train"], self.test_fraction, generator)
        if self.folds:  # cross-validation: fold `fold` of the pool validates, the test split stays as it is
            pool = joined(splits["train"], splits.pop("val", None))
            train, val = fold_positions(len(pool), self.folds, self.fold, generator, labels_of(pool))
            splits["train"], splits["val"] = take(pool, train), take(pool, val)
        elif "val" not in splits:
            splits["train"], splits["val"] = split_off(splits["train"], self.val_fraction, generator)
        # Low-label experiments: a stratified part of what stays in train (val and test untouched).
        splits["train"] = keep_fraction(splits["train"], self.train_fraction, generator)
        if self.loader == "tensor":
            in_memory = [name for name, dataset in splits.items() if not isinstance(dataset, TensorImages)]
            if in_memory:
                raise UserError(
                    f"data.loader=tensor needs the whole dataset in memory, but the {in_memory[0]} "
                    f"split is read from files; fix: data.loader=dataloader"
                )
        elif self.augmentation:
            from torchvision.transforms import v2

            splits["train"] = Transformed(splits["train"], v2.Compose(self.augmentation))
        self.datasets = splits

    def _to_configured_shape(self, dataset: Dataset) -> Dataset:
        """data.image_size / data.in_channels differing from the source's images: resize, and
        grey <-> RGB; other channel counts are left for _check to report."""
        image, _ = dataset[0]
        channels, size = image.shape[0], image.shape[-1]
        cheap = channels == self.in_channels or {channels, self.in_channels} == {1, 3}
        if (channels, size, image.shape[-2]) == (self.in_channels, self.image_size, self.image_size) or not cheap:
            return dataset
        if isinstance(dataset, TensorImages):
            return TensorImages(convert_images(dataset.images, self.in_channels, self.image_size), dataset.labels)
        return Transformed(dataset, partial(convert_image, channels=self.in_channels, size=self.image_size))

    def _check(self, train: Dataset) -> None:
        image, _ = train[0]
        expected = (self.in_channels, self.image_size, self.image_size)
        if tuple(image.shape) != expected:
            raise UserError(
                f"the data's images are {tuple(image.shape)} (C,H,W) but the config says {expected}; "
                f"fix: set data.in_channels/data.image_size to match the files"
            )
        classes = getattr(train, "classes", None)
        if classes is not None and len(classes) != self.num_classes:
            raise UserError(
                f"data.num_classes={self.num_classes} but the training folder has {len(classes)} "
                f"classes ({', '.join(classes[:10])}); fix: data.num_classes={len(classes)}"
            )
        if isinstance(train, TensorImages) and int(train.labels.max()) >= self.num_classes:
            raise UserError(
                f"labels go up to {int(train.labels.max())} but data.num_classes={self.num_classes}; "
                f"fix: data.num_classes={int(train.labels.max()) + 1}"
            )

    def dataloader(self, split: str, shuffle: bool = False):
        trainer = self.trainer
        if self.loader != "tensor" or (trainer is not None and trainer.overfit_batches):
            return super().dataloader(split, shuffle)  # overfit_batches needs a DataLoader to re-sample
        device = trainer.strategy.root_device if trainer is not None else None
        # Ranks share train/val/test; predictions keep the split's order, whole, on every rank.
        shard = trainer is not None and not trainer.predicting
        rank, world = (trainer.global_rank, trainer.world_size) if shard else (0, 1)
        return TensorLoader(
            self.datasets[split],
            self.batch_size,
            shuffle=shuffle,
            seed=self.seed,
            device=device,
            rank=rank,
            world_size=world,
        )

    def example_input(self, batch: int = 2) -> torch.Tensor:
        """A dummy normalised batch of this data's shape, for checking a model fits before training."""
        return torch.zeros(batch, self.in_channels, self.image_size, self.image_size)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if not isinstance(batch, (list, tuple)):  # the model summary's example input, already normalised
            return batch
        images, labels = batch
        training = self.trainer is not None and self.trainer.training
        if training and self.batch_augment is not None:
            images = self.batch_augment(images)
        if self.mean.device != images.device:  # move the statistics once, not on every batch
            self.mean, self.std = self.mean.to(images.device), self.std.to(images.device)
        images = (images.float().div_(255) - self.mean) / self.std
        if training and self.mixer is not None:
            images, labels = self.mixer(images, labels)
        if self.trainer is not None:  # Lightning converts a batch to the precision's dtype before this
            # hook, when its images are still uint8: trainer.precision=bf16-true needs them converted here
            return self.trainer.precision_plugin.convert_input((images, labels))
        return images, labels
