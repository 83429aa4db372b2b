"""Multi-layer perceptron: on flattened pixels, or on text as fastText (Joulin et al. 2016) does it,
the mean of the embeddings of a text's words and hashed word bigrams, then the layers."""

from __future__ import annotations

import torch
from torch import nn

from bigmodel_cli.models.layers import make_activation

# A large prime that spreads (first, second) word-id pairs over the bigram buckets.
BIGRAM_PRIME = 1_000_003


class NgramBag(nn.Module):
    """The mean embedding of a text's word ids (0 is padding) and, with `buckets`, of its adjacent
    word pairs hashed into that many extra rows: word order enters as bigrams, at the cost of one
    lookup per token."""

    def __init__(self, vocab_size: int, embed_dim: int, buckets: int = 0):
        super().__init__()
        self.vocab_size, self.buckets = vocab_size, buckets
        self.bag = nn.EmbeddingBag(vocab_size + buckets, embed_dim, mode="mean", padding_idx=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.buckets and ids.shape[1] > 1:
            first, second = ids[:, :-1], ids[:, 1:]
            pairs = self.vocab_size + (first * BIGRAM_PRIME + second) % self.buckets
            ids = torch.cat([ids, torch.where((first > 0) & (second > 0), pairs, 0)], 1)
        return self.bag(ids)


class MLP(nn.Module):
    modalities = ("image", "text")

    def __init__(
        self,
        num_classes: int,
        hidden: list[int],
        modality: str = "image",
        in_channels: int | None = None,
        image_size: int | None = None,
        vocab_size: int | None = None,
        embed_dim: int = 64,
        bigram_buckets: int = 0,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ):
        super().__init__()
        if modality == "text":
            layers: list[nn.Module] = [NgramBag(vocab_size, embed_dim, bigram_buckets)]
            width = embed_dim
        else:
            layers, width = [nn.Flatten()], in_channels * image_size * image_size
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers += [make_activation(activation), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
