"""Decoder-only causal Transformer language model, GPT-2 style: learned positions, pre-norm blocks
with causal scaled_dot_product_attention and a GELU MLP, a final LayerNorm, and an output layer
tied to the token embedding. Returns next-token logits (B, T, vocab_size). `stochastic_depth`
drops blocks' residual branches per sample in training, rising with depth."""

from __future__ import annotations

import math

import torch
from torch import nn

from bigmodel_cli.errors import UserError
from bigmodel_cli.models.layers import depth_rates, run_blocks
from bigmodel_cli.models.transformer import Block


class GPT(nn.Module):
    modalities = ("tokens",)

    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        stochastic_depth: float = 0.0,
        activation_checkpointing: bool = False,
    ):
        super().__init__()
        self.block_size, self.activation_checkpointing = block_size, activation_checkpointing
        self.tokens = nn.Embedding(vocab_size, dim)
        self.positions = nn.Embedding(block_size, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, dropout, "gelu", rate) for rate in depth_rates(stochastic_depth, depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        self.head.weight = self.tokens.weight  # tied embeddings
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by depth
            if name.endswith(("attn.out.weight", "mlp.2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * depth))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        length = idx.shape[1]
        if length > self.block_size:
            raise UserError(
                f"a sequence of {length} tokens is longer than model.block_size={self.block_size}; "
                f"fix: data.block_size<={self.block_size}"
            )
        h = self.drop(self.tokens(idx) + self.positions(torch.arange(length, device=idx.device)))
        h = run_blocks(self.blocks, h, self.activation_checkpointing, causal=True)
        return self.head(self.norm(h))

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append max_new_tokens sampled tokens to idx (B, T); temperature 0 means greedy."""
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.block_size :])[:, -1]
            if temperature <= 0:
                next_id = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k:
                    kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                next_id = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            idx = torch.cat([idx, next_id], dim=1)
        return idx
