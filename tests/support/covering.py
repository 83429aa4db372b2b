"""Pairwise covering sets: few configurations in which every pair of values from two different
factors appears at least once.

A seeded greedy cover in the AETG manner: each new configuration starts from an uncovered pair and
fills the other factors one at a time with the value that covers the most pairs still uncovered
(ties broken by the seeded generator); of a few such candidates the one covering most is kept. The
result stays near the product of the two largest factors. Two kinds of exception:
- `apart`: pairs that may not share a configuration with other pairs (a pair that must fail, or a
  known failure): each gets its own configuration, every other factor at its first value;
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
) -> list[Configuration]:
    """Configurations covering every pair of values of different factors (see the module doc).
    The first value of each factor is its default, used to fill apart/alone configurations."""
    factors = {name: list(values) for name, values in factors.items() if values}
    apart, alone, aside = set(apart), set(alone), set(aside)
    rng = random.Random(seed)
    names = list(factors)

    def fits(value: Value, chosen: dict[str, str]) -> bool:
        return value not in alone | aside and all(pair(value, (f, v)) not in apart for f, v in chosen.items())

    uncovered = {p for p in required_pairs(factors) if p not in apart and not (p & (alone | aside))}
    configurations: list[Configuration] = []
    while uncovered:
        best, best_gain = None, -1
        ordered = sorted(uncovered, key=lambda p: sorted(p))
        for _ in range(candidates):
            start = rng.choice(ordered)
            chosen = dict(start)
            rest = [n for n in names if n not in chosen]
            rng.shuffle(rest)
            for name in rest:
                options = [v for v in factors[name] if fits((name, v), chosen)]
                if not options:
                    raise ValueError(f"no value of {name} fits with {chosen} (apart pairs leave none)")
                gains = [sum(pair((name, v), c) in uncovered for c in chosen.items()) for v in options]
                top = max(gains)
                chosen[name] = rng.choice([v for v, g in zip(options, gains) if g == top])
            gain = sum(pair(a, b) in uncovered for a, b in itertools.combinations(chosen.items(), 2))
            if gain > best_gain:
                best, best_gain = chosen, gain
        configurations.append(Configuration({n: best[n] for n in names}))
        uncovered -= {pair(a, b) for a, b in itertools.combinations(best.items(), 2)}

    defaults = {name: values[0] for name, values in factors.items()}
    for p in sorted(apart, key=lambda p: sorted(p)):
        if all(v in factors.get(f, ()) for f, v in p):
            configurations.append(Configuration({**defaults, **dict(p)}, "apart", tuple(sorted(p))))
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
    return configurations


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
