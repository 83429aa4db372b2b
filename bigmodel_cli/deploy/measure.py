"""How an exported or compressed model compares with the original, on the run's test split:
output parity, accuracy, file size and CPU latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bigmodel_cli.deploy.inputs import held_out_batches

Model = Callable[[torch.Tensor], torch.Tensor]
LATENCY_BATCHES = (1, 64)


def parity(reference: Model, candidate: Model, datamodule, limit: int = 512) -> dict[str, float]:
    """The largest absolute difference between the two models' logits, and how often their
    predictions (argmax over the last dimension) agree, over up to `limit` test samples."""
    worst, agree, total = 0.0, 0, 0
    with torch.no_grad():
        for x, _ in held_out_batches(datamodule, limit):
            a, b = reference(x).float(), candidate(x).float()
            worst = max(worst, float((a - b).abs().max()))
            agree += int((a.argmax(-1) == b.argmax(-1)).sum())
            total += a.argmax(-1).numel()
    return {"max_abs_diff": worst, "agreement": agree / total}


def accuracy(model: Model, datamodule, limit: int | None = None) -> float | None:
    """Top-1 accuracy on the test split: per input for classifiers, per target token for
    language models (negative targets are ignored); None for data without targets (masked LM)."""
    correct = total = 0
    with torch.no_grad():
        for x, y in held_out_batches(datamodule, limit):
            if y is None or y.is_floating_point():
                return None
            counted = y >= 0
            correct += int(((model(x).argmax(-1) == y) & counted).sum())
            total += int(counted.sum())
    return correct / total


def latency_ms(model: Model, x: torch.Tensor, repeats: int) -> float:
    """Median wall time of one call, in ms, after two warm-up calls."""
    times = []
    with torch.no_grad():
        for i in range(repeats + 2):
            start = time.perf_counter()
            model(x)
            if i >= 2:
                times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def latencies(model: Model, inputs: torch.Tensor, repeats: int) -> dict[str, float]:
    """latency_b1_ms and latency_b64_ms: one input, and a batch of 64 (fewer repeats)."""
    return {
        f"latency_b{size}_ms": latency_ms(model, inputs[:size], repeats if size == 1 else max(3, repeats // 4))
        for size in LATENCY_BATCHES
    }


def size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def torch_size_mb(model: torch.nn.Module, where: Path) -> float:
    """The size of the model's state dict saved as float32 weights (what the exported files compare with)."""
    path = where / ".state_dict.tmp"
    torch.save(model.state_dict(), path)
    try:
        return size_mb(path)
    finally:
        path.unlink()


def baseline_row(model, datamodule, inputs, where, repeats: int) -> dict:
    """The checkpoint's model in PyTorch (eager, CPU): what every other row is compared with."""
    return {
        "file": "",
        "size_mb": torch_size_mb(model, where),
        "test_acc": accuracy(model, datamodule),
        **latencies(model, inputs, repeats),
    }
