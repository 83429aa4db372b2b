"""Recurrent convolutional network (Liang & Hu, "Recurrent Convolutional Neural Network for Object
Recognition", CVPR 2015).

A recurrent convolutional layer (RCL) keeps a feed-forward input u = w_f * x fixed and unrolls
`steps` recurrent updates x(t) = relu(BN_t(u + w_r * x(t-1))), with one recurrent kernel w_r shared
by all steps (batch norm per step stands in for the paper's local response normalisation). The
network: a conv stem, `depth` RCLs with a 2x max-pool after every `pool_every` of them (while the
image is larger than 1 px), global max-pooling, dropout and a linear classifier.
`stochastic_depth` drops the recurrent branch w_r * x(t-1) per sample in training (the RCL's
residual-like path: a dropped sample sees a shallower unrolling), rising with the layer's depth.
"""

from __future__ import annotations

import torch
from torch import nn

from bigmodel_cli.models.layers import DropPath, depth_rates


class RecurrentConv(nn.Module):
    def __init__(self, in_channels: int, channels: int, steps: int, kernel_size: int = 3, drop_path: float = 0.0):
        super().__init__()
        self.steps = steps
        self.drop_path = DropPath(drop_path)
        self.feedforward = nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.recurrent = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(steps + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.feedforward(x)
        state = torch.relu(self.norms[0](u))
        for t in range(1, self.steps + 1):
            state = torch.relu(self.norms[t](u + self.drop_path(self.recurrent(state))))
        return state


class RCNN(nn.Module):
    modalities = ("image",)

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        channels: int = 32,
        depth: int = 4,
        steps: int = 3,
        pool_every: int = 2,
        dropout: float = 0.0,
        stochastic_depth: float = 0.0,
    ):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        ]
        side = image_size
        for i, rate in enumerate(depth_rates(stochastic_depth, depth)):
            layers.append(RecurrentConv(channels, channels, steps, drop_path=rate))
            if (i + 1) % pool_every == 0 and i + 1 < depth and side > 1:
                layers.append(nn.MaxPool2d(2))
                side //= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
