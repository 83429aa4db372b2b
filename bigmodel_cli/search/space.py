"""The search space in the syntax of Hydra's sweepers (`hydra.sweeper.params` and sweep overrides on
the command line), as Optuna distributions:

    choice(adam, sgd) or adam,sgd     -> categorical
    interval(0.0, 0.5)                -> float in [0.0, 0.5]; tag(log, interval(1e-4, 1e-1)) log-uniform
    int(interval(1, 8))               -> integer in [1, 8]
    range(1, 10, 2)                   -> 1, 3, ..., 9 (stop excluded, as in Python; range(64, 16, -16)
                                         is 64, 48, 32)
    anything else                     -> fixed: passed to every trial as it is
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bigmodel_cli.errors import UserError


@dataclass
class SearchSpace:
    distributions: dict[str, Any] = field(default_factory=dict)  # override key -> Optuna distribution
    fixed: list[str] = field(default_factory=list)  # overrides every trial takes as they are

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """A trial's job overrides: its sampled values, then the fixed ones."""
        return [*(f"{key}={value}" for key, value in params.items()), *self.fixed]


def parse(params: dict[str, str] | None, arguments: list[str]) -> SearchSpace:
    """The search space from the sweeper's `params` and the command line's overrides (the command
    line wins for a key in both)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = {key: f"{key}={value}" for key, value in (params or {}).items()}
    parser = OverridesParser.create()
    for override in parser.parse_overrides(list(arguments)):
        lines[override.get_key_element()] = override.input_line
    space = SearchSpace()
    for override in parser.parse_overrides(list(lines.values())):
        key = override.get_key_element()
        if override.is_sweep_override():
            space.distributions[key] = distribution(key, override.value())
        else:
            space.fixed.append(f"{key}={override.get_value_element_as_str()}")
    return space


def distribution(key: str, sweep) -> Any:
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution(list(sweep.list))
    log = "log" in sweep.tags
    if isinstance(sweep, IntervalSweep):
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return IntDistribution(sweep.start, sweep.end, log=log)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    if isinstance(sweep, RangeSweep):
        start, stop, step = sweep.start, sweep.stop, sweep.step
        span = (stop - start) / step if step else 0
        if span <= 0:  # Python's range: a zero step, or a step that moves away from stop, gives nothing
            raise UserError(
                f"{key}=range({start}, {stop}, {step}) has no values (the step must be nonzero and lead from "
                f"start towards stop, which is excluded); fix: e.g. {key}=range({min(start, stop)}, "
                f"{max(start, stop)}, {abs(step) or 1})"
            )
        last = start + int(span - 1e-9) * step  # stop excluded; a descending range is the same set
        low, high = min(start, last), max(start, last)
        if all(isinstance(v, int) for v in (start, stop, step)):
            return IntDistribution(low, high, step=abs(step))
        return FloatDistribution(float(low), float(high), step=float(abs(step)))
    raise UserError(
        f"{key}: the Optuna search cannot sample {type(sweep).__name__}; valid forms: choice(a,b), a,b, "
        f"interval(lo,hi), tag(log, interval(lo,hi)), int(interval(lo,hi)), range(start,stop,step)"
    )
