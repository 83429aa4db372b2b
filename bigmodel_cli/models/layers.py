"""Small building blocks shared by the model families."""

from __future__ import annotations

from torch import nn

from bigmodel_cli.errors import UserError, choices_text

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise UserError(f"unknown activation '{name}'; valid choices: {choices_text(ACTIVATIONS)} "
                        f"(fix: model.activation=relu)")
    return ACTIVATIONS[name]()
