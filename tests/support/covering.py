"""Pairwise covering sets: few configurations in which every pair of values from two different
factors appears at least once.

A seeded greedy cover in the AETG manner: each new configuration starts from an uncovered pair and
fills the other factors one at a time with the value that covers the most pairs still uncovered
(ties broken by the seeded generator); of a few such candidates the one covering most is kept. The
result stays near the product of the two largest factors. Two kinds of exception:
- `apart`: pairs that may not share a configuration with other pairs (a pair that must fail, or a
  known failure): each gets its own configuration, every other factor at its first value that
  fits;
- `alone`: values that end a run early whatever else is chosen (hardware that is missing): each is
  paired with every value of the other factors in configurations of its own, and the pairs among
  those other values do not count as covered there;
- `aside`: values that fail on their own (a known failure): one configuration each, every other
  factor at its first value, and their pairs are not required until they work.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Value = tuple[str, str]  # (factor, value)
Pair = frozenset  # of two Values from different factors


def pair(a: Value, b: Value) -> Pair:
    return frozenset((a, b))


@dataclass(frozen=True)
class Configuration:
    choices: dict[str, str]  # factor -> value, every factor
    kind: str = "cover"  # "cover", "apart" (an isolated pair) or "alone" (an early-ending value)
    focus: tuple[Value, ...] = field(default=())  # the isolated pair or value, for apart/alone

    def values(self) -> list[Value]:
        return list(self.choices.items())


@dataclass(frozen=True)
class Cover:
    configurations: list[Configuration]
    infeasible: set[Pair]  # pairs that cannot be held without an apart pair or an aside value


def required_pairs(factors: Mapping[str, list[str]]) -> set[Pair]:
    names = list(factors)
    return {
        pair((f, a), (g, b))
        for i, f in enumerate(names)
        for g in names[i + 1 :]
        for a in factors[f]
        for b in factors[g]
    }


def pairwise_cover(
    factors: Mapping[str, list[str]],
    seed: int = 0,
    apart: Iterable[Pair] = (),
    alone: Iterable[Value] = (),
    aside: Iterable[Value] = (),
    candidates: int = 8,
) -> Cover:
    """Configurations covering every pair of values of different factors (see the module doc).
    The first value of each factor is its default, used to fill apart/alone configurations. Pairs
    that no configuration can hold without an apart pair or an aside value (data only one model
    reads, and that model apart from a third value) are returned as infeasible."""
    factors = {name: list(values) for name, values in factors.items() if values}
    apart, alone, aside = set(apart), set(alone), set(aside)
    rng = random.Random(seed)
    names = list(factors)

    def fits(value: Value, chosen: dict[str, str]) -> bool:
        return value not in alone | aside and all(pair(value, (f, v)) not in apart for f, v in chosen.items())

    uncovered = {p for p in required_pairs(factors) if p not in apart and not (p & (alone | aside))}
    configurations: list[Configuration] = []
    infeasible: set[Pair] = set()

    def extend(start: Pair) -> dict[str, str] | None:
        """A whole configuration around the start pair, or None where the order chosen dead-ends."""
        chosen = dict(start)
        rest = [n for n in names if n not in chosen]
        rng.shuffle(rest)
        for name in rest:
            options = [v for v in factors[name] if fits((name, v), chosen)]
            if not options:
                return None
            gains = [sum(pair((name, v), c) in uncovered for c in chosen.items()) for v in options]
            top = max(gains)
            chosen[name] = rng.choice([v for v, g in zip(options, gains) if g == top])
        return chosen

    while uncovered:
        best, best_gain = None, -1
        ordered = sorted(uncovered, key=lambda p: sorted(p))
        for _ in range(candidates):
            start = rng.choice(ordered)
            chosen = next((c for c in (extend(start) for _ in range(20)) if c is not None), None)
            if chosen is None:  # every configuration with this pair holds an apart pair or value
                infeasible.add(start)
                uncovered.discard(start)
                ordered.remove(start)
                if not ordered:
                    break
                continue
            gain = sum(pair(a, b) in uncovered for a, b in itertools.combinations(chosen.items(), 2))
            if gain > best_gain:
                best, best_gain = chosen, gain
        if best is None:
            continue
        configurations.append(Configuration({n: best[n] for n in names}))
        uncovered -= {pair(a, b) for a, b in itertools.combinations(best.items(), 2)}

    defaults = {name: values[0] for name, values in factors.items()}
    for p in sorted(apart, key=lambda p: sorted(p)):
        if all(v in factors.get(f, ()) for f, v in p):
            chosen = dict(p)
            for name in names:  # the first value that fits: bert is tried on text, not on the default digits
                if name not in chosen:
                    chosen[name] = next((v for v in factors[name] if fits((name, v), chosen)), defaults[name])
            configurations.append(Configuration({n: chosen[n] for n in names}, "apart", tuple(sorted(p))))
    for value in sorted(aside):
        configurations.append(Configuration({**defaults, value[0]: value[1]}, "aside", (value,)))
    for value in sorted(alone - aside):
        factor, _ = value
        others = {n: [v for v in vs if (n, v) not in alone | aside] for n, vs in factors.items() if n != factor}
        todo = {pair(value, (n, v)) for n, vs in others.items() for v in vs if pair(value, (n, v)) not in apart}
        while todo:
            chosen = {factor: value[1]}
            for name in names:
                if name == factor:
                    continue
                options = [v for v in others[name] if fits((name, v), chosen)]
                wanted = [v for v in options if pair(value, (name, v)) in todo]
                chosen[name] = (wanted or options)[0]
            configurations.append(Configuration({n: chosen[n] for n in names}, "alone", (value,)))
            todo -= {pair(value, c) for c in chosen.items()}
    return Cover(configurations, infeasible)


def uncovered_pairs(
    factors: Mapping[str, list[str]], configurations: list[Configuration], apart=(), alone=(), aside=()
) -> set[Pair]:
    """The required pairs that no configuration covers (the check of a cover): pairs of two
    regular values in cover configurations, apart pairs in theirs, alone values' pairs in theirs
    (aside values' pairs are not required)."""
    apart, alone, aside = set(apart), set(alone), set(aside)
    left = required_pairs({n: list(v) for n, v in factors.items() if v})
    for c in configurations:
        if c.kind == "cover":
            left -= {pair(a, b) for a, b in itertools.combinations(c.values(), 2)}
        elif c.kind == "apart":
            left.discard(pair(*c.focus))
        elif c.kind == "alone":
            left -= {pair(c.focus[0], v) for v in c.values() if v != c.focus[0]}
    return {p for p in left if not (p & aside) and len(p & alone) < 2}
