"""Small building blocks shared by the model families."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from bigmodel_cli.errors import UserError, choices_text

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise UserError(f"unknown activation '{name}'; valid choices: {choices_text(ACTIVATIONS)} "
                        f"(fix: model.activation=relu)")
    return ACTIVATIONS[name]()


def load_weights(model: nn.Module, path: str) -> None:
    """A local state dict (or a dict holding one under 'state_dict'), loaded with weights_only=True."""
    import torch

    if not Path(path).is_file():
        raise UserError(f"model.weights={path} does not exist; fix: give a local .pt/.pth state dict, or "
                        f"model.weights=null for random init")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable or unsafe: same advice
        raise UserError(f"model.weights={path} is not a readable state dict ({type(exc).__name__}); "
                        f"fix: save one with torch.save(model.state_dict(), path)") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"model.weights={path} does not fit this model ({str(exc).splitlines()[1].strip()[:160]}); "
                        f"fix: weights saved from the same model.arch, data.in_channels and "
                        f"data.num_classes") from None
