"""Seconds per masked-LM training step of bigmodel's BERT (data=text_corpus model=bert, the module
`bigmodel train` builds): the vocabulary-sized head on the masked tokens only (what training runs)
against the head on every token and the loss selecting the masked ones (what it ran before, and
what compile.fullgraph runs).

    python scripts/bench_mlm.py [--dims 64 128 256] [--vocab-sizes 8000 16000 32000] [--steps 10]

Random token ids at the recipe's shape (batch 64, 64 tokens), BERT's 15% masking; forward,
backward and an AdamW step; the two ways alternate step by step (median over --steps each, after
a warm-up step), on the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parent


def build(dim: int, vocab_size: int, batch: int, length: int):
    if str(SCRIPTS) not in sys.path:  # loaded from elsewhere (the tests)
        sys.path.insert(0, str(SCRIPTS))
    from plain_loop import compose  # the config `bigmodel train` composes

    from bigmodel_cli.training.pieces import build_module, plain

    overrides = ["data=text_corpus", "model=bert", f"model.dim={dim}", f"data.vocab_size={vocab_size}",
                 f"data.max_length={length}", f"data.batch_size={batch}"]  # fmt: skip
    return build_module(plain(compose(overrides)))


def one_step(module, inputs, targets, chosen, optimizer, masked_only: bool) -> float:
    start = time.perf_counter()
    logits = module.masked_predictions(inputs, chosen) if masked_only else module(inputs)[chosen]
    loss = torch.nn.functional.cross_entropy(logits, targets[chosen])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def paired_seconds(module, inputs, targets, chosen, steps: int) -> tuple[float, float]:
    """Median s/step of (every token, masked tokens only), their steps alternating so that a
    change of the machine's load hits both alike; one warm-up step each."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(steps + 1):
        for masked_only in (False, True):
            times[masked_only].append(one_step(module, inputs, targets, chosen, optimizer, masked_only))
    return statistics.median(times[False][1:]), statistics.median(times[True][1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[8000, 16000, 32000])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    from bigmodel_cli.lightning_modules.masked_lm import IGNORE, mask_tokens

    print(f"batch {args.batch_size} x {args.length} tokens, torch threads {torch.get_num_threads()}\n")
    print("| dim | vocabulary | every token: s/step | masked tokens only: s/step | speed-up |")
    print("|---:|---:|---:|---:|---:|")
    for dim in args.dims:
        for vocab_size in args.vocab_sizes:
            torch.manual_seed(0)
            module = build(dim, vocab_size, args.batch_size, args.length)
            ids = torch.randint(3, vocab_size, (args.batch_size, args.length))
            inputs, targets = mask_tokens(ids, vocab_size, generator=torch.Generator().manual_seed(0))
            chosen = targets != IGNORE
            every, masked = paired_seconds(module, inputs, targets, chosen, args.steps)
            print(f"| {dim} | {vocab_size} | {every:.3f} | {masked:.3f} | {every / masked:.1f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
