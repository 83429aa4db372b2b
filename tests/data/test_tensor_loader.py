"""data.loader=tensor: same order for the same seed, and batched augmentation that is statistically
the same operation as the per-sample torchvision v2 pipeline."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from bigmodel_cli.data.batch_augment import BatchAugment
from bigmodel_cli.data.tensor_images import TensorImages, TensorLoader


def dataset(count: int = 50) -> TensorImages:
    return TensorImages(torch.arange(count * 4, dtype=torch.uint8).view(count, 1, 2, 2), torch.arange(count))


def order(loader: TensorLoader, epoch: int) -> list[int]:
    loader.set_epoch(epoch)
    return torch.cat([labels for _, labels in loader]).tolist()


def test_same_seed_same_order_and_new_order_each_epoch():
    a, b = TensorLoader(dataset(), 8, shuffle=True, seed=3), TensorLoader(dataset(), 8, shuffle=True, seed=3)
    assert order(a, 0) == order(b, 0) and order(a, 1) == order(b, 1)
    assert order(a, 0) != order(a, 1) and sorted(order(a, 0)) == list(range(50))
    assert order(TensorLoader(dataset(), 8, shuffle=True, seed=4), 0) != order(a, 0)
    assert len(a) == 7 and order(TensorLoader(dataset(), 8), 0) == list(range(50))


def test_ranks_share_the_epoch_without_overlap():
    shards = [order(TensorLoader(dataset(), 8, shuffle=True, seed=1, rank=r, world_size=2), 0) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 25 and not set(shards[0]) & set(shards[1])


def marker_images(count: int, size: int = 8) -> torch.Tensor:
    """Images with one bright pixel off-centre: where it lands tells what the augmentation did."""
    images = torch.zeros(count, 1, size, size, dtype=torch.uint8)
    images[:, 0, 2, 5] = 255
    return images


def landing(images: torch.Tensor) -> torch.Tensor:
    """Histogram over pixel positions of where the marker landed (all-zero images count as lost)."""
    flat = images.view(len(images), -1).float()
    counts = torch.zeros(flat.shape[1] + 1)
    present = flat.max(1).values > 0
    counts[-1] = (~present).sum()
    counts[:-1] += torch.bincount(flat[present].argmax(1), minlength=flat.shape[1]).float()
    return counts / len(images)


@pytest.mark.parametrize(
    "transforms",
    [
        [v2.RandomCrop(8, padding=1), v2.RandomHorizontalFlip(0.5)],
        [v2.RandomCrop(8, padding=1), v2.RandomHorizontalFlip(0.5), v2.RandomRotation(10)],
        [v2.RandomRotation(30)],
    ],
    ids=["flip_crop", "standard", "rotation"],
)
def test_batched_augmentation_matches_per_sample(transforms):
    torch.manual_seed(0)
    count = 6000
    images = marker_images(count)
    per_sample = torch.stack([v2.Compose(transforms)(image) for image in images])
    batched = BatchAugment(transforms)(images)
    assert batched.shape == per_sample.shape and batched.dtype == torch.uint8
    expected, got = landing(per_sample), landing(batched)
    # Every position's frequency agrees within sampling noise (4 standard errors).
    tolerance = 4 * torch.sqrt(expected.clamp(min=1 / count) / count)
    assert ((expected - got).abs() <= tolerance).all(), (expected - got).abs().max()
    assert (expected > 0).sum() >= 3, "the augmentation should move the marker around"


def test_batched_random_erasing_matches_per_sample():
    """Each image's erased rectangle: how often, how large and where, against v2 image by image
    (a fill value per channel, on 3-channel images)."""
    torch.manual_seed(0)
    count, size = 6000, 12
    erasing = v2.RandomErasing(p=0.7, scale=(0.02, 0.6), ratio=(0.3, 3.3), value=[0, 10, 20])
    images = torch.full((count, 3, size, size), 255, dtype=torch.uint8)
    per_sample = torch.stack([erasing(image) for image in images])
    batched = BatchAugment([erasing])(images)
    assert batched.dtype == torch.uint8 and batched.shape == images.shape
    erased = batched != 255
    assert (erased[:, 0] == erased[:, 2]).all() and set(batched[:, 2][erased[:, 2]].unique().tolist()) == {20}
    got, expected = erased[:, 0], per_sample[:, 0] != 255
    # Where: each pixel's erase frequency. How large: the erased area, in 6 bins of the image's.
    where_got, where_expected = got.float().mean(0), expected.float().mean(0)
    assert ((where_got - where_expected).abs() <= 4 * torch.sqrt(where_expected.clamp(min=1 / count) / count)).all()
    area_got, area_expected = (torch.histc(e.sum((1, 2)).float(), 6, 0, size * size) / count for e in (got, expected))
    assert ((area_got - area_expected).abs() <= 4 * torch.sqrt(area_expected.clamp(min=1 / count) / count)).all()
    assert 0.5 < got.any(2).any(1).float().mean() < 0.75  # p=0.7, less the images no try fitted


def test_tensor_loader_is_the_default_and_augments_only_training(compose_cfg):
    from bigmodel_cli.training.pieces import build_datamodule

    with compose_cfg("train", ["augmentation=flip_crop"]) as cfg:
        datamodule = build_datamodule(cfg.data)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    assert isinstance(loader, TensorLoader)
    batch = next(iter(loader))
    plain = datamodule.on_after_batch_transfer(batch, 0)  # no trainer: not training, no augmentation
    expected = (batch[0].float() / 255 - datamodule.mean) / datamodule.std
    torch.testing.assert_close(plain[0], expected)
