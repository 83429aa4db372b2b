"""torchvision's ResNets (resnet18/34/50), randomly initialised, for any channel count.

The small-image stem (a 3x3 stride-1 first conv and no max-pool, as for CIFAR) is on by default
for images of 64 px or less, where the ImageNet stem would shrink the image 4x before the first
block. `weights` loads a local state dict (no download); its keys must match the built model.
`stochastic_depth` drops residual branches per sample in training (rising with depth).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from bigmodel_cli.errors import UserError, choices_text
from bigmodel_cli.models.layers import DropPath, depth_rates, load_weights, run_blocks

ARCHS = ("resnet18", "resnet34", "resnet50")
SMALL_IMAGE = 64


class ResNet(nn.Module):
    modalities = ("image",)

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        arch: str = "resnet18",
        small_stem: bool | None = None,
        weights: str | None = None,
        dropout: float = 0.0,
        stochastic_depth: float = 0.0,
        activation_checkpointing: bool = False,
    ):
        super().__init__()
        import torchvision.models

        self.activation_checkpointing = activation_checkpointing
        if arch not in ARCHS:
            raise UserError(
                f"model.arch={arch} is not a ResNet here; valid choices: {choices_text(ARCHS)} "
                f"(fix: model.arch=resnet18)"
            )
        net = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
        if small_stem is None:
            small_stem = image_size <= SMALL_IMAGE
        if small_stem:
            net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        net.fc = nn.Sequential(nn.Dropout(dropout), net.fc)
        self.net = net
        if stochastic_depth:
            add_stochastic_depth(net, stochastic_depth)
        if weights:
            load_weights(self, weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.activation_checkpointing:
            return self.net(x)
        net = self.net  # torchvision's forward, with each residual block of the four stages checkpointed
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        h = run_blocks(
            [block for stage in (net.layer1, net.layer2, net.layer3, net.layer4) for block in stage], h, True
        )
        return net.fc(torch.flatten(net.avgpool(h), 1))


def add_stochastic_depth(net: nn.Module, rate: float) -> None:
    """Drop each residual block's branch per sample in training (rates rising with depth). The
    branch ends in the block's last batch norm (bn2, or bn3 in a bottleneck), before the identity
    is added: a forward hook there applies the block's DropPath, so the state-dict keys stay
    torchvision's (model.weights still load)."""
    blocks = [block for stage in (net.layer1, net.layer2, net.layer3, net.layer4) for block in stage]
    for block, p in zip(blocks, depth_rates(rate, len(blocks))):
        block.drop_path = DropPath(p)
        last_norm = block.bn3 if hasattr(block, "bn3") else block.bn2
        last_norm.register_forward_hook(partial(drop_branch, block.drop_path))


def drop_branch(drop_path: DropPath, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    """A forward hook (module-level, so strategies that pickle the model can)."""
    return drop_path(output)
