"""Augmentation of whole uint8 batches on the device, and batch-level mixing (mixup/cutmix).

`BatchAugment` takes the same torchvision v2 transform objects the per-sample path composes and
applies each to a (B, C, H, W) uint8 batch, drawing the random parameters independently for every
image, so it is statistically the same operation as running the v2 pipeline image by image:
- RandomCrop: pad once, then gather a size x size window at a random offset per image;
- RandomHorizontalFlip / RandomVerticalFlip: flip a random subset of the batch;
- RandomRotation: one affine sampling grid per image (torchvision's rotation about the centre);
- RandomErasing with a fixed value: v2's ten tries at a rectangle, drawn for every image at once;
- TrivialAugmentWide, RandAugment, AutoAugment: an operation per image, each run once a batch
  (batch_auto_augment.py);
- anything else (color jitter, ...): the v2 transform per image, on the device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from bigmodel_cli.data import batch_auto_augment


def _fill_value(fill) -> float:
    if isinstance(fill, dict):  # v2 keeps fill per input type
        fill = next(iter(fill.values()), 0)
    if isinstance(fill, (list, tuple)):
        fill = fill[0] if fill else 0
    return float(fill or 0)


def random_crop(
    images: torch.Tensor,
    size: tuple[int, int],
    padding: list[int] | None,
    fill: float = 0.0,
    padding_mode: str = "constant",
) -> torch.Tensor:
    """A random size window of each (padded) image, as v2.RandomCrop does one image at a time."""
    if padding:
        left, top, right, bottom = padding
        mode = {"edge": "replicate"}.get(padding_mode, padding_mode)
        if mode == "constant":
            images = F.pad(images, (left, right, top, bottom), value=fill)
        else:
            images = F.pad(images.float(), (left, right, top, bottom), mode=mode).to(images.dtype)
    n, _, height, width = images.shape
    crop_h, crop_w = size
    # v2 draws the top-left corner uniformly over the valid range (torch.randint(0, H - h + 1)).
    top = torch.randint(0, height - crop_h + 1, (n,), device=images.device)
    left = torch.randint(0, width - crop_w + 1, (n,), device=images.device)
    # One gather of flat pixel indices (top + row) * width + (left + col), shared by the channels.
    rows = top[:, None, None] + torch.arange(crop_h, device=images.device)[:, None]
    cols = left[:, None, None] + torch.arange(crop_w, device=images.device)
    index = (rows * width + cols).view(n, 1, crop_h * crop_w).expand(n, images.shape[1], -1)
    flat = images.reshape(n, images.shape[1], height * width)
    return flat.gather(2, index).view(n, images.shape[1], crop_h, crop_w)


def random_flip(images: torch.Tensor, p: float, dim: int = -1) -> torch.Tensor:
    """Flip each image along `dim` with probability p."""
    chosen = torch.rand(images.shape[0], device=images.device) < p
    return torch.where(chosen[:, None, None, None], images.flip(dim), images)


def random_rotation(
    images: torch.Tensor, degrees: list[float], fill: float = 0.0, interpolation: str = "nearest"
) -> torch.Tensor:
    """Rotate each image counter-clockwise by an angle uniform in degrees=[low, high] about its centre,
    keeping the size and filling the corners, like v2.RandomRotation (expand=False)."""
    n, _, height, width = images.shape
    low, high = degrees
    angles = torch.empty(n, device=images.device).uniform_(low, high) * (math.pi / 180.0)
    cos, sin = torch.cos(angles), torch.sin(angles)
    # Output -> input map in normalised coordinates (align_corners=False), aspect ratio accounted for.
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * height / width
    theta[:, 1, 0], theta[:, 1, 1] = sin * width / height, cos
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images.float(), grid, mode=interpolation, padding_mode="zeros", align_corners=False)
    if fill:  # sample a ones channel too, to know which output pixels fell outside the image
        inside = F.grid_sample(
            torch.ones_like(out[:, :1]), grid, mode="nearest", padding_mode="zeros", align_corners=False
        )
        out = out + (1 - inside) * fill
    return out.round().clamp(0, 255).to(images.dtype) if images.dtype == torch.uint8 else out


ERASE_TRIES = 10  # v2.RandomErasing's tries at a rectangle that fits before it leaves the image alone


def random_erasing(
    images: torch.Tensor, p: float, scale: list[float], ratio: list[float], value: list[float]
) -> torch.Tensor:
    """Fill a random rectangle of each image with `value` with probability p, as v2.RandomErasing
    does one image at a time: an area fraction uniform in scale and a log-uniform aspect ratio in
    ratio, the first of ten tries whose sides fit inside the image, at a uniform position (no try
    fits: the image is left alone). A per-image loop of it took a minute of a 10-minute recipe."""
    n, _, height, width = images.shape
    device = images.device
    area = height * width * torch.empty(n, ERASE_TRIES, device=device).uniform_(*scale)
    aspect = torch.exp(torch.empty(n, ERASE_TRIES, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1])))
    h, w = torch.sqrt(area * aspect).round().long(), torch.sqrt(area / aspect).round().long()
    fits = (h < height) & (w < width)
    first = fits.long().argmax(1, keepdim=True)  # the first try that fits (0 when none does)
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)
    erase = fits.any(1) & (torch.rand(n, device=device) < p)
    top = (torch.rand(n, device=device) * (height - h + 1)).long()
    left = (torch.rand(n, device=device) * (width - w + 1)).long()
    rows, cols = torch.arange(height, device=device), torch.arange(width, device=device)
    in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (n, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (n, W)
    inside = (in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None])[:, None]
    fill = torch.tensor(value, device=device).to(images.dtype).view(1, -1, 1, 1)  # one value, or one per channel
    return torch.where(inside, fill, images)


class PerSample:
    """One v2 transform applied image by image. A class, not a closure, and the batched ops are
    partials of module functions, so ddp_spawn can pickle the data module holding them."""

    def __init__(self, transform: Callable):
        self.transform = transform

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.transform(image) for image in images])


def batched(transform) -> Callable[[torch.Tensor], torch.Tensor]:
    """The batched equivalent of one v2 transform (the per-image loop when there is none)."""
    from torchvision.transforms import InterpolationMode, v2

    if isinstance(transform, v2.RandomCrop) and not transform.pad_if_needed:
        return partial(
            random_crop,
            size=transform.size,
            padding=transform.padding,
            fill=_fill_value(transform.fill),
            padding_mode=transform.padding_mode,
        )
    if isinstance(transform, v2.RandomHorizontalFlip):
        return partial(random_flip, p=transform.p, dim=-1)
    if isinstance(transform, v2.RandomVerticalFlip):
        return partial(random_flip, p=transform.p, dim=-2)
    mode = InterpolationMode(getattr(transform, "interpolation", "nearest")).value  # v2 may keep a str
    if (
        isinstance(transform, v2.RandomRotation)
        and not transform.expand
        and transform.center is None
        and mode in ("nearest", "bilinear")
    ):
        return partial(random_rotation, degrees=transform.degrees, fill=_fill_value(transform.fill), interpolation=mode)
    if batch_auto_augment.supports(transform):
        return batch_auto_augment.BatchedAutoAugment(transform)
    if isinstance(transform, v2.RandomErasing) and transform.value is not None:  # value="random": per image
        return partial(
            random_erasing,
            p=transform.p,
            scale=list(transform.scale),
            ratio=list(transform.ratio),
            value=transform.value,
        )
    return PerSample(transform)


class BatchAugment:
    """The train augmentation (v2 transforms, in order) applied to whole uint8 batches."""

    def __init__(self, transforms: list):
        self.transforms = list(transforms)
        self.ops = [batched(t) for t in self.transforms]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            images = op(images)
        return images


def is_batch_level(transform) -> bool:
    """Transforms that mix images of a batch (v2.MixUp, v2.CutMix) and so run on batches only."""
    from torchvision.transforms import v2

    return isinstance(transform, (v2.MixUp, v2.CutMix))


def batch_mixer(transforms: list) -> Callable | None:
    """One of the mixing transforms per batch (v2.RandomChoice when mixup and cutmix are both on)."""
    from torchvision.transforms import v2

    if not transforms:
        return None
    return transforms[0] if len(transforms) == 1 else v2.RandomChoice(transforms)
