"""Attributions people can look at: a PNG grid for images (each sample, then its heatmap over it,
with the predicted and true class and the confidence), an HTML page and coloured terminal text
for tokens (red: for the predicted class, blue: against it)."""

from __future__ import annotations

import html
from pathlib import Path

import torch

from bigmodel_cli.atomic import atomic_path, write_text
from bigmodel_cli.extras import pyplot


def image_grid(path: Path, pixels: torch.Tensor, scores: torch.Tensor, titles: list[str], method: str) -> None:
    """pixels: (N, C, H, W) uint8; scores: (N, H, W) attribution per pixel."""
    plt = pyplot()

    n = len(pixels)
    figure, axes = plt.subplots(n, 2, figsize=(4.2, 2.1 * n), squeeze=False)
    for row, (image, score, title) in enumerate(zip(pixels, scores, titles)):
        shown = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)
        axes[row, 0].imshow(shown.numpy(), cmap="gray" if image.shape[0] == 1 else None)
        axes[row, 0].set_title(title, fontsize=8)
        axes[row, 1].imshow(shown.numpy(), cmap="gray" if image.shape[0] == 1 else None, alpha=0.5)
        limit = float(score.abs().max()) or 1.0
        axes[row, 1].imshow(score.numpy(), cmap="bwr", vmin=-limit, vmax=limit, alpha=0.7)
        axes[row, 1].set_title(method, fontsize=8)
        for axis in axes[row]:
            axis.set_axis_off()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


def token_colour(score: float, limit: float) -> tuple[int, int, int]:
    """White at 0, towards red for positive and blue for negative scores."""
    strength = min(abs(score) / limit, 1.0) if limit else 0.0
    fade = int(255 * (1 - 0.75 * strength))
    return (255, fade, fade) if score >= 0 else (fade, fade, 255)


def token_html(path: Path, samples: list[tuple[list[str], list[float], str]], method: str) -> None:
    """samples: (tokens, scores, title) each; one paragraph per sample."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{method}</title><h1>{html.escape(method)}</h1>"]
    for tokens, scores, title in samples:
        limit = max((abs(s) for s in scores), default=0.0)
        spans = "".join(
            f"<span style='background: rgb{token_colour(s, limit)}' title='{s:.4g}'>{html.escape(t)}</span> "
            for t, s in zip(tokens, scores)
        )
        parts.append(f"<h2>{html.escape(title)}</h2><p style='font-family: monospace; line-height: 1.8'>{spans}</p>")
    write_text(path, "\n".join(parts) + "\n")


def print_tokens(samples: list[tuple[list[str], list[float], str]]) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console()
    for tokens, scores, title in samples:
        limit = max((abs(s) for s in scores), default=0.0)
        line = Text(f"{title}: ")
        for token, score in zip(tokens, scores):
            line.append(token, style=f"black on rgb{token_colour(score, limit)}".replace(" ", "", 0))
            line.append(" ")
        console.print(line)
