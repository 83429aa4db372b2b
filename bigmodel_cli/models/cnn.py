"""The classic convolutional stack: [conv-(bn)-act] x convs_per_stage, max-pool, per stage; then a
fully-connected head on the pooled features. On text, Kim (2014)'s sentence CNN: parallel 1-D
convolutions of several widths over the word embeddings, each max-pooled over the text, then the
same head."""

from __future__ import annotations

import torch
from torch import nn

from bigmodel_cli.errors import UserError
from bigmodel_cli.models.layers import make_activation


class CNN(nn.Module):
    modalities = ("image", "text")

    def __init__(
        self,
        num_classes: int,
        channels: list[int],
        modality: str = "image",
        in_channels: int | None = None,
        image_size: int | None = None,
        vocab_size: int | None = None,
        embed_dim: int = 64,
        kernel_sizes: list[int] = (3, 4, 5),
        convs_per_stage: int | list[int] = 1,
        hidden: int = 128,
        batch_norm: bool = True,
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        if modality == "text":
            self.features = TextConvolutions(vocab_size, embed_dim, kernel_sizes, channels[0])
            self.head = head(channels[0] * len(kernel_sizes), hidden, num_classes, activation, dropout)
            return
        if image_size >> len(channels) < 1:
            raise UserError(
                f"model.channels has {len(channels)} stages, each halving the image, but "
                f"data.image_size={image_size} allows at most {image_size.bit_length() - 1}; "
                f"fix: use fewer stages, e.g. model.channels=[32,64]"
            )
        layers: list[nn.Module] = []
        width = in_channels
        for out, convs in zip(channels, stage_counts(convs_per_stage, channels)):
            for _ in range(convs):
                layers.append(nn.Conv2d(width, out, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(make_activation(activation))
                width = out
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        side = image_size >> len(channels)
        self.head = head(width * side * side, hidden, num_classes, activation, dropout)

    def forward(self, x):
        return self.head(self.features(x))


def stage_counts(convs_per_stage, channels) -> list[int]:
    """Convolutions in each stage: one count for all, or one per stage (more where the image is
    small costs least: a stage's convolutions cost its channels squared times its pixels)."""
    if isinstance(convs_per_stage, int):
        return [convs_per_stage] * len(channels)
    counts = list(convs_per_stage)
    if len(counts) != len(channels):
        raise UserError(
            f"model.convs_per_stage={counts} gives {len(counts)} stages but model.channels={list(channels)} "
            f"has {len(channels)}; fix: one count per stage, e.g. model.convs_per_stage={[1] * len(channels)}"
        )
    return counts


def head(features: int, hidden: int, num_classes: int, activation: str, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(features, hidden),
        make_activation(activation),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


class TextConvolutions(nn.Module):
    """Word embeddings (id 0: padding), a 1-D convolution per width with `filters` outputs, each
    max-pooled over the windows that hold a real token (so a text's features do not depend on how
    much padding its batch adds), ReLU, concatenated."""

    def __init__(self, vocab_size: int, embed_dim: int, kernel_sizes, filters: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, k) for k in kernel_sizes)
        self.widest = max(kernel_sizes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] < self.widest:  # every width needs one whole window
            ids = nn.functional.pad(ids, (0, self.widest - ids.shape[1]))
        lengths = (ids != 0).sum(1, keepdim=True).clamp(min=1)
        embedded = self.embed(ids).transpose(1, 2)  # (B, E, L)
        pooled = []
        for conv in self.convs:
            out = conv(embedded)  # (B, F, L - k + 1): window t covers tokens t .. t+k-1
            start = torch.arange(out.shape[2], device=ids.device)
            # Windows wholly on real tokens, and always the first (for a text shorter than k).
            real = (start == 0) | (start + conv.kernel_size[0] <= lengths)
            pooled.append(out.masked_fill(~real[:, None, :], float("-inf")).amax(2))
        return torch.relu(torch.cat(pooled, 1))
