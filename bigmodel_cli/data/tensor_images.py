"""A map-style dataset over in-memory uint8 image tensors."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class TensorImages(Dataset):
    """Images as one uint8 (N, C, H, W) tensor with int64 labels: kept whole for fast paths."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.ndim != 4 or images.dtype != torch.uint8 or len(images) != len(labels):
            raise ValueError(
                f"expected uint8 (N,C,H,W) images and N labels, got {tuple(images.shape)} "
                f"{images.dtype} and {len(labels)} labels"
            )
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index], self.labels[index]


class TensorLoader:
    """Batches sliced from a split held whole as tensors (on the training device), no workers.

    Each epoch's order is a permutation drawn from a generator seeded with (seed, epoch), so the
    same seed gives the same data order. Lightning calls `sampler.set_epoch(epoch)` on it each
    epoch, as on a DataLoader. Under DDP each rank takes every world_size-th index of the order
    (padded by wrapping around, as DistributedSampler does, so every rank gets as many batches).

    It keeps its position in the epoch (Lightning's Stateful loader protocol: `state_dict` goes
    into each checkpoint, `load_state_dict` comes back on resume), so a run resumed from a
    checkpoint saved mid-epoch goes on with the next batch of the same order, not a new epoch.
    """

    def __init__(
        self,
        dataset: TensorImages,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        device=None,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.dataset = TensorImages(dataset.images.to(device), dataset.labels.to(device)) if device else dataset
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.sampler, self.batch_sampler = self, None  # where Lightning looks for set_epoch
        self.batches_served = 0  # of the current epoch's order (Lightning fetches no batch ahead of a sized loader)
        self._resume_at: tuple[int, int] | None = None  # (epoch, batch) to start the next pass at

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_served": self.batches_served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_at = (int(state["epoch"]), int(state["batches_served"]))

    def order(self) -> torch.Tensor:
        count = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(count, generator=generator)
        else:
            order = torch.arange(count)
        if self.world_size > 1:
            per_rank = -(-count // self.world_size)
            order = torch.cat([order, order[: per_rank * self.world_size - count]])[self.rank :: self.world_size]
        return order.to(self.dataset.images.device)

    @property
    def samples_per_rank(self) -> int:
        """Samples this rank draws in an epoch (the split divided by the ranks, rounded up)."""
        return -(-len(self.dataset) // self.world_size)

    def __len__(self) -> int:
        return -(-self.samples_per_rank // self.batch_size)

    def __iter__(self):
        # A generator: the order is drawn at the first batch, after Lightning's set_epoch.
        first = 0
        if self._resume_at is not None and self._resume_at[0] == self.epoch:
            first = self._resume_at[1]
        self._resume_at = None
        order = self.order()
        images, labels = self.dataset.images, self.dataset.labels
        self.batches_served = first
        for start in range(first * self.batch_size, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            self.batches_served += 1
            yield images[index], labels[index]


def convert_images(images: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) images at `channels` (grey <-> RGB) and `size` x `size` (bilinear,
    antialiased), still uint8: how a model pretrained at one shape fine-tunes on data of another."""
    out = images
    if out.shape[1] != channels:
        if out.shape[1] == 1 and channels == 3:
            out = out.expand(-1, 3, -1, -1)
        else:  # RGB -> grey: ITU-R 601 luma, as PIL's "L" mode
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            out = (out.float() * weights).sum(dim=1, keepdim=True).round().to(torch.uint8)
    if out.shape[-1] != size or out.shape[-2] != size:
        resized = torch.nn.functional.interpolate(
            out.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out = resized.round().clamp_(0, 255).to(torch.uint8)
    return out.contiguous()


def convert_image(image: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """One (C, H, W) uint8 image, as convert_images (a per-sample transform for file datasets)."""
    return convert_images(image.unsqueeze(0), channels, size)[0]
