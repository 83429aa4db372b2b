"""The run's own test split as model inputs: what exports are checked and timed on."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def model_input(batch):
    """A batch's inputs: (x, y) pairs for labeled data, the tensor itself for unlabeled text."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def labels_of(batch):
    return batch[1] if isinstance(batch, (list, tuple)) and len(batch) > 1 else None


def held_out_batches(datamodule, limit: int | None = None):
    """(inputs, labels) of the test split as the data holds them (uint8 pixels, token ids), batch
    by batch, at most `limit` samples in all."""
    datamodule.setup("test")
    seen = 0
    for batch in datamodule.test_dataloader():
        x, y = model_input(batch), labels_of(batch)
        if limit is not None and seen + len(x) > limit:
            x, y = x[: limit - seen], None if y is None else y[: limit - seen]
        yield x, y
        seen += len(x)
        if limit is not None and seen >= limit:
            return


def held_out_inputs(datamodule, count: int) -> torch.Tensor:
    """`count` test inputs in one tensor (text padded to the longest); repeated when the split is smaller."""
    parts = [x for x, _ in held_out_batches(datamodule, count)]
    x = pad_and_concat(parts)
    if len(x) < count:
        x = x.repeat(-(-count // len(x)), *([1] * (x.ndim - 1)))[:count]
    return x


def pad_and_concat(parts: list[torch.Tensor]) -> torch.Tensor:
    if parts[0].ndim == 2 and not parts[0].is_floating_point():  # token ids: right-pad with id 0
        length = max(p.shape[1] for p in parts)
        parts = [pad_to(p, length) for p in parts]
    return torch.cat(parts)


def pad_to(x: torch.Tensor, length: int) -> torch.Tensor:
    """Token ids right-padded with id 0 (or cut) to `length`: models ignore padding."""
    return F.pad(x, (0, length - x.shape[1])) if x.shape[1] < length else x[:, :length]


def is_token_input(x: torch.Tensor) -> bool:
    return x.ndim == 2 and not x.is_floating_point()


def longest_input(datamodule) -> int | None:
    """The most tokens the data gives a model at once (texts are cut to it, LM blocks are that long)."""
    return getattr(datamodule, "max_length", None) or getattr(datamodule, "block_size", None)
