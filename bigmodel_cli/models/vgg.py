"""torchvision's VGG layer tables (vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn; plain without _bn),
adapted to small images and any channel count: the first conv reads `in_channels`, only as many
2x max-pools are kept as the image size allows (the last ones are dropped), `width` scales every
stage (64 = torchvision's widths), and the 4096-wide head on 7x7 maps becomes global average
pooling and a `hidden`-wide MLP."""

from __future__ import annotations

from torch import nn

from bigmodel_cli.errors import UserError, choices_text
from bigmodel_cli.models.layers import load_weights

ARCHS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def layer_table(arch: str) -> list:
    from torchvision.models.vgg import cfgs

    name = arch.removesuffix("_bn")
    if name not in ARCHS:
        valid = [f"{a}{bn}" for a in ARCHS for bn in ("_bn", "")]
        raise UserError(
            f"model.arch={arch} is not a VGG; valid choices: {choices_text(valid)} (fix: model.arch=vgg11_bn)"
        )
    return list(cfgs[ARCHS[name]])


class VGG(nn.Module):
    modalities = ("image",)

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        arch: str = "vgg11_bn",
        width: int = 64,
        hidden: int = 512,
        weights: str | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        table = layer_table(arch)
        pools = sum(1 for v in table if v == "M")
        keep = min(pools, max(image_size.bit_length() - 1, 0))  # floor(log2(image_size))
        layers: list[nn.Module] = []
        channels = in_channels
        for v in table:
            if v == "M":
                if keep > 0:
                    layers.append(nn.MaxPool2d(2))
                    keep -= 1
                continue
            out = max(1, v * width // 64)
            layers.append(nn.Conv2d(channels, out, 3, padding=1))
            if arch.endswith("_bn"):
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        if weights:
            load_weights(self, weights)

    def forward(self, x):
        return self.head(self.features(x))
