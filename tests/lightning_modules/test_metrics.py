"""The training metrics' batched updates (lightning_modules/metrics.py) give torchmetrics' values for
per-step updates at any point of an epoch, after a reset, and through a pickle (ddp_spawn)."""

from __future__ import annotations

import pickle

import torch
from torchmetrics import MetricCollection

from bigmodel_cli.lightning_modules.metrics import classification_metrics


def batches(count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(16, 10, generator=generator), torch.randint(0, 10, (16,), generator=generator))
        for _ in range(count)
    ]


def values(collection: MetricCollection) -> dict[str, float]:
    return {name: float(value) for name, value in collection.compute().items()}


def test_batched_training_metrics_equal_per_step_updates():
    batched, reference = classification_metrics(10, batched=True, prefix="train/"), classification_metrics(10)
    stream = batches(70, seed=0)  # not a multiple of the 32 batches held between updates
    for step, (preds, target) in enumerate(stream):
        batched.update(preds, target)
        reference.update(preds, target)
        if step in (5, 40):  # mid-epoch reads see every batch so far, never a cached value
            assert values(batched) == {f"train/{k}": v for k, v in values(reference).items()}
    assert values(batched) == {f"train/{k}": v for k, v in values(reference).items()}
    assert set(values(batched)) == {"train/acc", "train/f1", "train/acc_top5"}

    batched.reset()
    fresh = classification_metrics(10)
    for preds, target in batches(3, seed=1):
        batched.update(preds, target)
        fresh.update(preds, target)
    assert values(batched) == {f"train/{k}": v for k, v in values(fresh).items()}


def test_a_pickled_collection_keeps_one_shared_buffer():
    batched = pickle.loads(pickle.dumps(classification_metrics(10, batched=True)))
    reference = classification_metrics(10)
    for preds, target in batches(40, seed=2):
        batched.update(preds, target)
        reference.update(preds, target)
    assert values(batched) == values(reference)
