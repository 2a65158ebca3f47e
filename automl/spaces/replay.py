"""Replays: ways of answering `hp` calls without a search engine.

- `FixedAnswers`: values from a dict (how a stored winner is rebuilt, or `automl trial --params`).
- `RandomAnswers`: seeded random values (`automl check --samples N`).
- `explore_space`: a recording run with defaults that also visits every value of each
  `conditional_scope` parent, so the parameter table shows every branch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from automl.errors import SpaceError
from automl.spaces.hyperparameters import HyperParameters, Kind, ParamSpec, Value


class FixedAnswers:
    """Answers from stored values.

    Args:
        values: parameter name to value.
        missing: what to do for a parameter with no stored value: `"error"` (a rebuilt winner
            must match its space exactly) or `"default"` (use the definition's default).
            Defaults to `"error"`.
        source: what the values are, for messages. Defaults to `"the stored values"`.
    """

    def __init__(
        self,
        values: Mapping[str, Value],
        *,
        missing: Literal["error", "default"] = "error",
        source: str = "the stored values",
    ) -> None:
        self._values = dict(values)
        self._missing = missing
        self._source = source
        self.used: set[str] = set()

    def answer(self, spec: ParamSpec) -> Value:
        if spec.name in self._values:
            self.used.add(spec.name)
            return self._values[spec.name]
        if self._missing == "default":
            return spec.default
        raise SpaceError(
            f"{spec.location}: '{spec.name}' has no value in {self._source}; the space gained a "
            "parameter since they were stored (use the space file the study was made with)."
        )

    def unused(self) -> list[str]:
        """Names given but never asked for (a typo, or a branch that was not taken)."""
        return sorted(set(self._values) - self.used)


class RandomAnswers:
    """Seeded random values, uniform on each parameter's scale.

    Args:
        seed: the random seed. Defaults to `None` (not reproducible).
    """

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def answer(self, spec: ParamSpec) -> Value:
        grid = spec.grid()
        if grid is not None:
            return self._rng.choice(grid)
        assert spec.low is not None and spec.high is not None
        if spec.log:
            value = math.exp(self._rng.uniform(math.log(spec.low), math.log(spec.high)))
        else:
            value = self._rng.uniform(spec.low, spec.high)
        value = min(max(value, spec.low), spec.high)
        return round(value) if spec.kind is Kind.INT else value


@dataclass(frozen=True)
class Exploration:
    """What `explore_space` found.

    Attributes:
        specs: every distinct definition met, in first-seen order.
        builds: how many builds it took.
    """

    specs: tuple[ParamSpec, ...]
    builds: int


def explore_space(run: Callable[[HyperParameters], object], max_builds: int = 64) -> Exploration:
    """Record every definition, visiting each value of every conditional parent once.

    Args:
        run: builds once with the given `hp` (the result is discarded).
        max_builds: a bound for spaces with many nested branches. Defaults to `64`.
    """
    specs: dict[tuple[str, tuple[object, ...]], ParamSpec] = {}
    tried: set[tuple[str, object]] = set()
    queue: list[dict[str, Value]] = [{}]
    builds = 0
    while queue and builds < max_builds:
        forced = queue.pop(0)
        hp = HyperParameters(FixedAnswers(forced, missing="default"))
        run(hp)
        builds += 1
        for spec in hp.space:
            specs.setdefault((spec.name, spec.conditions), spec)
        parents = hp.scope_parents | {c.parent for spec in hp.space for c in spec.conditions}
        by_name = {spec.name: spec for spec in hp.space}
        for parent in sorted(parents):
            parent_spec = by_name.get(parent)
            grid = parent_spec.grid() if parent_spec is not None else None
            if grid is None or len(grid) > 16:
                continue
            for value in grid:
                key = (parent, (type(value), value))
                if key in tried or value == hp.values.get(parent):
                    tried.add(key)
                    continue
                tried.add(key)
                queue.append({**forced, parent: value})
    return Exploration(specs=tuple(specs.values()), builds=builds)
