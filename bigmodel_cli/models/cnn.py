"""The classic convolutional stack: [conv-(bn)-act] x convs_per_stage, max-pool, per stage; then a
fully-connected head on the pooled features."""

from __future__ import annotations

from torch import nn

from bigmodel_cli.errors import UserError
from bigmodel_cli.models.layers import make_activation


class CNN(nn.Module):
    modalities = ("image",)

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        channels: list[int],
        convs_per_stage: int = 1,
        hidden: int = 128,
        batch_norm: bool = True,
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        if image_size >> len(channels) < 1:
            raise UserError(
                f"model.channels has {len(channels)} stages, each halving the image, but "
                f"data.image_size={image_size} allows at most {image_size.bit_length() - 1}; "
                f"fix: use fewer stages, e.g. model.channels=[32,64]"
            )
        layers: list[nn.Module] = []
        width = in_channels
        for out in channels:
            for _ in range(convs_per_stage):
                layers.append(nn.Conv2d(width, out, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(make_activation(activation))
                width = out
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        side = image_size >> len(channels)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(width * side * side, hidden),
            make_activation(activation),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.head(self.features(x))
