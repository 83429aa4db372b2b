"""Multi-layer perceptron on flattened inputs."""

from __future__ import annotations

from torch import nn

from bigmodel_cli.models.layers import make_activation


class MLP(nn.Module):
    modalities = ("image",)

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        hidden: list[int],
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
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
