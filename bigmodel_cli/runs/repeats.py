"""Jobs that repeat one configuration with another seed or on another cross-validation fold, as statistics: mean ± sd of the objective
per configuration, and whether a configuration differs from the best one beyond seed noise.

The test is a two-sided permutation test of the difference of means: every way of relabelling the
pooled values into two groups of the same sizes (exact up to MAX_EXACT splits, else that many
seeded random ones). It assumes nothing about the distribution, which three or five seeds could not
show, and needs no scipy. The p-value is the share of relabellings whose difference is at least
the observed one (sampled: with the observed one counted, never 0).
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from dataclasses import dataclass

# Overrides that repeat a configuration rather than change it (a sweep over data.fold=range(K)
# is a cross-validation).
REPEAT_KEYS = ("seed", "data.fold")
MAX_EXACT = 20_000


@dataclass(frozen=True)
class Repeats:
    settings: tuple[tuple[str, str], ...]  # the configuration: its overrides other than REPEAT_KEYS
    values: tuple[float, ...]  # the objective of each repeat that has one

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


def group_repeats(jobs: list[dict], objective_of, ignored: tuple[str, ...]) -> list[Repeats]:
    """The jobs with an objective, grouped by their overrides apart from REPEAT_KEYS and `ignored`
    (run-control flags), in first-seen order; only when some configuration has several repeats."""
    groups: dict[tuple, list[float]] = {}
    for job in jobs:
        value = objective_of(job)
        if value is None:
            continue
        settings = tuple(sorted((k, str(v)) for k, v in job["overrides"].items() if k not in (*REPEAT_KEYS, *ignored)))
        groups.setdefault(settings, []).append(float(value))
    found = [Repeats(settings, tuple(values)) for settings, values in groups.items()]
    return found if any(len(g.values) > 1 for g in found) else []


def permutation_p(a: tuple[float, ...], b: tuple[float, ...], seed: int = 0) -> float:
    """Two-sided p-value of the difference of the means of a and b under relabelling."""
    pooled, n = [*a, *b], len(a)
    observed = abs(statistics.fmean(a) - statistics.fmean(b))
    total = sum(pooled)

    def at_least(chosen) -> bool:
        first = sum(pooled[i] for i in chosen)
        diff = abs(first / n - (total - first) / (len(pooled) - n))
        return diff >= observed - 1e-12 * max(1.0, observed)

    if math.comb(len(pooled), n) <= MAX_EXACT:
        splits = list(itertools.combinations(range(len(pooled)), n))
        return sum(at_least(chosen) for chosen in splits) / len(splits)
    rng = random.Random(seed)  # sampled: the observed split counts once, so p is never 0
    return (1 + sum(at_least(rng.sample(range(len(pooled)), n)) for _ in range(MAX_EXACT))) / (MAX_EXACT + 1)
