"""tta=<option>: test-time augmentation for image classifiers. Each image is scored by the mean of
the class probabilities over its views: the image itself, its mirror (tta.flip), and each of those
shifted by tta.shift pixels left, right, up and down with the padding the training crops use.

Evaluation outside a fit (the test after training, `bigmodel test|validate|predict`) uses the
views; the validation inside a fit scores the plain image, because it picks checkpoints and stops
runs early, and the views would multiply its cost every epoch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bigmodel_cli.config.contracts import keys_group_settings


@dataclass(frozen=True)
class ViewSettings:
    flip: bool = False
    shift: int = 0

    @classmethod
    def from_config(cls, config) -> ViewSettings:
        """From a run config (types and ranges were checked with the rest of it: config/validation);
        configs saved before tta existed have no node: no views."""
        return cls(**keys_group_settings(config, "tta", cls))

    @property
    def active(self) -> bool:
        return self.flip or self.shift > 0

    def views_per_image(self) -> int:
        return (1 + self.flip) * (5 if self.shift else 1)


class ViewAverage:
    """The log of the mean class probability over an image's views: used as logits, its softmax is
    the mean probability, and the cross-entropy of it is the loss of the averaged prediction.

    `fill` is the normalised value of a zero pixel, one per channel: a shifted view is padded as
    the training crops pad (zeros before normalisation). Views run one forward pass each, so the
    memory of a batch stays that of one view."""

    def __init__(self, settings: ViewSettings, fill: torch.Tensor):
        self.settings = settings
        self.fill = fill.reshape(1, -1, 1, 1)

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        images = [x, torch.flip(x, dims=[-1])] if self.settings.flip else [x]
        s = self.settings.shift
        if not s:
            return images
        fill = self.fill.to(device=x.device, dtype=x.dtype)
        height, width = x.shape[-2:]
        shifted = []
        for image in images:
            padded = F.pad(image - fill, (s, s, s, s)) + fill
            for dy, dx in ((0, -s), (0, s), (-s, 0), (s, 0)):
                shifted.append(padded[..., s + dy : s + dy + height, s + dx : s + dx + width])
        return images + shifted

    def __call__(self, model, x: torch.Tensor) -> torch.Tensor:
        views = self.views(x)
        probabilities = sum(torch.softmax(model(view).float(), dim=-1) for view in views) / len(views)
        return probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny).log()
