"""Post-training magnitude pruning: the smallest weights of every Linear, Conv and Embedding layer,
ranked together (global L1), set to zero and the pruning made permanent."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import prune

from bigmodel_cli.callbacks.pruning import prunable_weights


def magnitude_prune(model: nn.Module, amount: float) -> float:
    """Zero the `amount` fraction of prunable weights with the smallest magnitude; returns the
    sparsity reached."""
    weights = prunable_weights(model)
    prune.global_unstructured(weights, pruning_method=prune.L1Unstructured, amount=amount)
    for module, name in weights:
        prune.remove(module, name)
    return sparsity(model)


def sparsity(model: nn.Module) -> float:
    """The fraction of prunable weights that are exactly zero."""
    weights = [getattr(m, name) for m, name in prunable_weights(model)]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total
