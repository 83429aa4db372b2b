"""Are the attributions faithful? The deletion test: delete the features (pixels, or tokens) in
order of attribution, most first, and follow the probability of the originally predicted class;
a faithful explanation makes it fall faster than deleting the same features in random order. The
curve's area (mean probability over the deletion steps, 0 to 1) is the number: lower is better."""

from __future__ import annotations

from collections.abc import Callable

import torch

RANDOM_ORDERS = 3


def deletion_curve(
    predict: Callable[[torch.Tensor], torch.Tensor],
    features: torch.Tensor,
    order: torch.Tensor,
    delete: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    target: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """(N, steps + 1) probability of `target` after deleting 0, 1/steps, ..., all of each sample's
    features in `order` ((N, F) feature indices, real features first; `features`: (N,) how many
    are real). `delete(removed, k)` returns the inputs with the (N, F) boolean `removed` deleted."""
    n, total = order.shape
    curve = []
    for step in range(steps + 1):
        count = (features.float() * step / steps).round().long()
        removed = torch.zeros(n, total, dtype=torch.bool)
        ranks = torch.arange(total).expand(n, -1)
        removed.scatter_(1, order, ranks < count[:, None])
        with torch.no_grad():
            probabilities = torch.softmax(predict(delete(removed, step)).float(), -1)
        curve.append(probabilities.gather(1, target[:, None])[:, 0])
    return torch.stack(curve, 1)


def area(curve: torch.Tensor) -> float:
    """Trapezoidal area under the mean curve, with the x axis (fraction deleted) from 0 to 1."""
    mean = curve.mean(0)
    return float(((mean[1:] + mean[:-1]) / 2).mean())


def ranked(scores: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Feature indices by score, highest first, padding (not `real`) last."""
    return torch.where(real, scores, torch.tensor(-torch.inf)).argsort(1, descending=True)


def random_order(real: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return ranked(torch.rand(real.shape, generator=generator), real)


def deletion_areas(predict, scores, real, delete, target, steps: int, seed: int = 0) -> dict[str, float]:
    """deletion_auc (by attribution) and random_auc (mean of RANDOM_ORDERS random orders)."""
    features = real.sum(1)
    by_attribution = area(deletion_curve(predict, features, ranked(scores, real), delete, target, steps))
    generator = torch.Generator().manual_seed(seed)
    randoms = [
        area(deletion_curve(predict, features, random_order(real, generator), delete, target, steps))
        for _ in range(RANDOM_ORDERS)
    ]
    return {"deletion_auc": by_attribution, "random_auc": sum(randoms) / len(randoms)}
