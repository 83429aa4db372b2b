"""Small building blocks shared by the model families."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bigmodel_cli.errors import UserError, choices_text

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise UserError(
            f"unknown activation '{name}'; valid choices: {choices_text(ACTIVATIONS)} (fix: model.activation=relu)"
        )
    return ACTIVATIONS[name]()


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, a residual branch's output is zeroed for a
    random `p` of the samples and the rest scaled by 1/(1-p); in eval it is the identity."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p:.3g}"


def run_blocks(blocks, h: torch.Tensor, checkpointing: bool, *args, **kwargs) -> torch.Tensor:
    """h through each block in turn. With model.activation_checkpointing, a block keeps only its
    input for backward and runs its forward again there (torch.utils.checkpoint, non-reentrant:
    the random state is replayed, so dropout and stochastic depth draw the same masks): activation
    memory of one block instead of all, for about one more forward's time."""
    from torch.utils.checkpoint import checkpoint

    recompute = checkpointing and torch.is_grad_enabled()
    for block in blocks:
        h = checkpoint(block, h, *args, use_reentrant=False, **kwargs) if recompute else block(h, *args, **kwargs)
    return h


def depth_rates(rate: float, blocks: int) -> list[float]:
    """Drop rates rising linearly with depth from 0 to `rate` at the last block (the usual rule:
    early blocks, which every later one builds on, are dropped least)."""
    return [rate * i / (blocks - 1) for i in range(blocks)] if blocks > 1 else [rate] * blocks


def load_weights(model: nn.Module, path: str) -> None:
    """A local state dict (or a dict holding one under 'state_dict'), loaded with weights_only=True."""
    import torch

    if not Path(path).is_file():
        raise UserError(
            f"model.weights={path} does not exist; fix: give a local .pt/.pth state dict, or "
            f"model.weights=null for random init"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable or unsafe: same advice
        raise UserError(
            f"model.weights={path} is not a readable state dict ({type(exc).__name__}); "
            f"fix: save one with torch.save(model.state_dict(), path)"
        ) from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(
            f"model.weights={path} does not fit this model ({str(exc).splitlines()[1].strip()[:160]}); "
            f"fix: weights saved from the same model.arch, data.in_channels and "
            f"data.num_classes"
        ) from None


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(
            f"model.{key}={value} is not known; valid choices: {choices_text(choices)} (fix: model.{key}={choices[0]})"
        )
