"""Attributions of the predicted class to each input feature, through Captum. Images: per pixel
and channel, on the normalised input the model reads. Text: per token; the gradient methods work
on the embedding layer's output (token ids have no gradient), the perturbation methods switch
tokens to padding."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bigmodel_cli.errors import UserError

GRADIENT = ("saliency", "integrated_gradients", "gradient_shap")
PERTURBATION = ("occlusion", "lime", "kernel_shap")
METHODS = (*GRADIENT, *PERTURBATION)
# Perturbation methods on images work on patches: a grid of at most this many per side.
PATCH_GRID = 8


def image_attributions(
    method: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor, steps: int
) -> torch.Tensor:
    """(N, C, H, W) attributions for normalised images `x`; `baseline` is a black image, normalised."""
    from captum import attr

    base = baseline.expand_as(x)
    if method == "saliency":
        return attr.Saliency(model).attribute(x, target=target, abs=True)
    if method == "integrated_gradients":
        return attr.IntegratedGradients(model).attribute(x, baselines=base, target=target, n_steps=steps)
    if method == "gradient_shap":
        # The reference distribution: black and uniformly random images, normalised like the data.
        noise = (torch.rand(4, *x.shape[1:]) - 0.5) * 2 * baseline.abs().max() + baseline
        references = torch.cat([baseline.expand(4, *x.shape[1:]), noise])
        return attr.GradientShap(model).attribute(x, baselines=references, target=target, n_samples=steps)
    mask = patch_mask(x.shape[-2], x.shape[-1]).expand(1, x.shape[1], -1, -1)
    if method == "occlusion":
        # Each patch (all channels) set to black in turn: Captum's occlusion with non-overlapping
        # windows, through a feature mask so that a side the patch does not divide is covered too.
        return attr.FeatureAblation(model).attribute(x, baselines=base, target=target, feature_mask=mask)
    explainer = attr.Lime(model) if method == "lime" else attr.KernelShap(model)
    return torch.cat(
        [
            explainer.attribute(
                x[i : i + 1],
                target=target[i : i + 1],
                baselines=base[i : i + 1],
                feature_mask=mask,
                n_samples=steps * 8,
            )
            for i in range(len(x))
        ]
    )


def patch_mask(height: int, width: int, cells: int = PATCH_GRID) -> torch.Tensor:
    """(H, W) patch index of each pixel: square patches of ceil(side / cells) pixels (at most
    `cells` per side), the last row and column cropped to the image when the side does not divide."""
    patch = max(1, -(-max(height, width) // cells))
    rows, columns = -(-height // patch), -(-width // patch)
    grid = torch.arange(rows * columns).view(rows, columns)
    return grid.repeat_interleave(patch, 0).repeat_interleave(patch, 1)[:height, :width]


def text_attributions(
    method: str, model: nn.Module, ids: torch.Tensor, target: torch.Tensor, steps: int
) -> torch.Tensor:
    """(N, T) attributions of token ids `ids` (0 = padding, which gets none)."""
    from captum import attr

    if method in GRADIENT:
        embedding = getattr(model, "embed", None)
        if not isinstance(embedding, nn.Embedding):
            raise UserError(
                f"method={method} needs the model's token embedding (model.embed), which this model lacks; "
                f"fix: method={'|'.join(PERTURBATION)}"
            )
        pad = torch.zeros_like(ids)
        if method == "saliency":
            scores = (
                attr.LayerGradientXActivation(model, embedding, multiply_by_inputs=False)
                .attribute(ids, target=target)
                .abs()
            )
        elif method == "integrated_gradients":
            scores = attr.LayerIntegratedGradients(model, embedding).attribute(
                ids, baselines=pad, target=target, n_steps=steps
            )
        else:
            scores = attr.LayerGradientShap(model, embedding).attribute(
                ids, baselines=torch.stack([pad[0]] * 2), target=target, n_samples=steps
            )
        return scores.sum(-1) * (ids != 0)
    rows = []
    for i in range(len(ids)):
        keep = torch.ones(1, ids.shape[1])
        forward = switchable_tokens(model, ids[i : i + 1])
        if method == "occlusion":
            row = attr.Occlusion(forward).attribute(
                keep, sliding_window_shapes=(1,), baselines=0.0, target=target[i : i + 1]
            )
        else:
            explainer = attr.Lime(forward) if method == "lime" else attr.KernelShap(forward)
            row = explainer.attribute(keep, target=target[i : i + 1], baselines=0.0, n_samples=steps * 8)
        rows.append(row)
    return torch.cat(rows) * (ids != 0)


def switchable_tokens(model: nn.Module, ids: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function of a (B, T) presence vector: the model on `ids` with absent tokens as padding."""

    def forward(keep: torch.Tensor) -> torch.Tensor:
        return model(torch.where(keep > 0.5, ids.expand(len(keep), -1), torch.zeros_like(ids)))

    return forward
