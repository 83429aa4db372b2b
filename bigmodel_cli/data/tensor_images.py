"""A map-style dataset over in-memory uint8 image tensors."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class TensorImages(Dataset):
    """Images as one uint8 (N, C, H, W) tensor with int64 labels: kept whole for fast paths."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.ndim != 4 or images.dtype != torch.uint8 or len(images) != len(labels):
            raise ValueError(f"expected uint8 (N,C,H,W) images and N labels, got {tuple(images.shape)} "
                             f"{images.dtype} and {len(labels)} labels")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index], self.labels[index]
