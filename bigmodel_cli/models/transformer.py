"""Transformer encoder classifier: pre-norm blocks with scaled_dot_product_attention.

On images it embeds non-overlapping patches (ViT style, `patch_size`); on text it embeds tokens
(id 0 is padding: masked out of attention and of mean pooling). Positions are learned or
sinusoidal; the sequence is pooled by a CLS token or by the mean over real tokens.
`stochastic_depth` drops each block's branches per sample in training, rising with depth.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bigmodel_cli.errors import UserError, choices_text
from bigmodel_cli.models.layers import DropPath, check_choice, depth_rates, make_activation, run_blocks

POSITIONS = ("learned", "sinusoidal")
POOLING = ("cls", "mean")


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise UserError(
                f"model.dim={dim} is not divisible by model.heads={heads}; "
                f"fix: a dim that is a multiple of heads, e.g. model.dim={heads * max(1, dim // heads)}"
            )
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        """mask: (B, L) bool, True where a key may be attended to."""
        b, length, dim = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if mask is None else mask[:, None, None, :]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=causal, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, length, dim))


class Block(nn.Module):
    """Pre-norm: x + attn(norm(x)), then x + mlp(norm(x)); each branch dropped per sample with
    probability drop_path in training (stochastic depth)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        activation: str = "gelu",
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.drop_path = DropPath(drop_path)
        hidden = int(dim * mlp_ratio)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), make_activation(activation), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask=None, causal: bool = False):
        x = x + self.drop_path(self.drop(self.attn(self.norm1(x), mask, causal)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def sinusoidal(length: int, dim: int) -> torch.Tensor:
    position = torch.arange(length).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return table


def check_patch_size(patch_size: int, image_size: int) -> None:
    if patch_size < 1 or image_size % patch_size:
        fits = [p for p in range(1, image_size + 1) if image_size % p == 0]
        raise UserError(
            f"model.patch_size={patch_size} does not divide data.image_size={image_size}; valid "
            f"choices: {choices_text(fits)} (fix: model.patch_size={fits[len(fits) // 2]})"
        )


class Transformer(nn.Module):
    modalities = ("image", "text")

    def __init__(
        self,
        num_classes: int,
        modality: str = "image",
        in_channels: int | None = None,
        image_size: int | None = None,
        patch_size: int = 4,
        vocab_size: int | None = None,
        max_length: int | None = None,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        positions: str = "learned",
        pooling: str = "cls",
        dropout: float = 0.0,
        activation: str = "gelu",
        stochastic_depth: float = 0.0,
        activation_checkpointing: bool = False,
    ):
        super().__init__()
        check_choice("positions", positions, POSITIONS)
        self.activation_checkpointing = activation_checkpointing
        check_choice("pooling", pooling, POOLING)
        self.modality, self.pooling = modality, pooling
        if modality == "image":
            check_patch_size(patch_size, image_size)
            self.embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
            length = (image_size // patch_size) ** 2
        else:
            self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
            length = max_length
        length += pooling == "cls"
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if pooling == "cls" else None
        if positions == "learned":
            self.positions = nn.Parameter(torch.randn(1, length, dim) * 0.02)
        else:
            self.register_buffer("positions", sinusoidal(length, dim)[None], persistent=False)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, dropout, activation, rate) for rate in depth_rates(stochastic_depth, depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, mask = self.encode(x)
        if self.cls is not None:
            return self.head(h[:, 0])
        if mask is None:
            return self.head(h.mean(1))
        weights = mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * weights).sum(1) / weights.sum(1).clamp(min=1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every position's final hidden state ([CLS] first when pooling=cls), and the mask of
        real (non-padding) positions for text."""
        if self.modality == "image":
            tokens, mask = self.embed(x).flatten(2).transpose(1, 2), None
        else:
            tokens, mask = self.embed(x), x != 0
            mask[:, 0] |= ~mask.any(1)  # an empty text still attends to (and pools) one position
        if self.cls is not None:
            # shape[0], not len(): len() is a plain int, which would fix the batch size of an export.
            batch = tokens.shape[0]
            tokens = torch.cat([self.cls.expand(batch, -1, -1), tokens], dim=1)
            if mask is not None:
                mask = torch.cat([mask.new_ones(batch, 1), mask], dim=1)
        h = self.drop(tokens + self.positions[:, : tokens.shape[1]])
        h = run_blocks(self.blocks, h, self.activation_checkpointing, mask)
        return self.norm(h), mask
