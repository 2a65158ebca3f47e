"""`automl check`: what a space defines and what its default model looks like, with no training.

The recording replay builds with defaults and visits every value of each conditional parent, so
the parameter table shows every branch; the default model is built and summarised; optionally N
random configurations are built to see which branches are reached and how large models get.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from automl.errors import SpaceError
from automl.spaces.hyperparameters import HyperParameters, ParamSpec, Value
from automl.spaces.loader import Space, SpaceInfo
from automl.spaces.replay import RandomAnswers, explore_space


@dataclass(frozen=True)
class LayerLine:
    name: str
    kind: str
    output_shape: str
    params: int


@dataclass(frozen=True)
class ModelSummary:
    """A short description of a built model."""

    name: str
    params: int
    trainable_params: int
    input_shape: str
    output_shape: str
    optimizer: str
    loss: str
    layers: tuple[LayerLine, ...]


@dataclass(frozen=True)
class SampleReport:
    """What N random configurations reached.

    Attributes:
        samples: how many were built.
        branches: for each discrete parameter, how often each value was taken.
        inactive: for each conditional parameter, how many samples left it inactive.
        min_params: smallest parameter count built.
        max_params: largest parameter count built.
        failures: one line per configuration that failed to build.
    """

    samples: int
    branches: dict[str, dict[str, int]]
    inactive: dict[str, int]
    min_params: int | None
    max_params: int | None
    failures: tuple[str, ...]


@dataclass(frozen=True)
class CheckReport:
    specs: tuple[ParamSpec, ...]
    default_values: dict[str, Value]
    exploration_builds: int
    model: ModelSummary
    samples: SampleReport | None
    seconds: float


def check_space(space: Space, info: SpaceInfo, *, samples: int = 0, seed: int = 0) -> CheckReport:
    """Record the parameter table, summarise the default model, optionally sample N configs.

    Raises:
        SpaceError: the default configuration does not build.
    """
    import keras

    started = time.perf_counter()

    def run(hp: HyperParameters) -> None:
        keras.backend.clear_session()
        space.build(hp, info)

    exploration = explore_space(run)
    keras.backend.clear_session()
    hp = HyperParameters()
    model = space.build(hp, info)
    summary = summarize_model(model)
    report = _sample(space, info, samples, seed, exploration.specs) if samples > 0 else None
    keras.backend.clear_session()
    return CheckReport(
        specs=exploration.specs,
        default_values=hp.values,
        exploration_builds=exploration.builds,
        model=summary,
        samples=report,
        seconds=time.perf_counter() - started,
    )


def summarize_model(model: Any) -> ModelSummary:
    """Parameter counts, shapes, optimizer and top-level layers of a compiled model."""
    layers = tuple(
        LayerLine(
            name=layer.name,
            kind=type(layer).__name__,
            output_shape=_shape(getattr(layer, "output", None)),
            params=int(layer.count_params()) if layer.built else 0,
        )
        for layer in model.layers
    )
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    loss = model.loss if isinstance(model.loss, str) else type(model.loss).__name__
    return ModelSummary(
        name=model.name,
        params=int(model.count_params()),
        trainable_params=trainable,
        input_shape=_shape(model.inputs[0]) if model.inputs else "?",
        output_shape=_shape(model.outputs[0]) if model.outputs else "?",
        optimizer=type(model.optimizer).__name__,
        loss=str(loss),
        layers=layers,
    )


def _sample(
    space: Space, info: SpaceInfo, samples: int, seed: int, known: tuple[ParamSpec, ...]
) -> SampleReport:
    import keras

    branches: dict[str, Counter[str]] = {}
    inactive: Counter[str] = Counter()
    counts: list[int] = []
    failures: list[str] = []
    for index in range(samples):
        keras.backend.clear_session()
        hp = HyperParameters(RandomAnswers(seed + index))
        try:
            model = space.build(hp, info)
        except SpaceError as exc:
            failures.append(f"sample {index + 1}: {exc}")
            continue
        counts.append(int(model.count_params()))
        for spec in hp.space:
            grid = spec.grid()
            if spec.name in hp.values and grid is not None and len(grid) <= 16:
                branches.setdefault(spec.name, Counter())[str(hp.values[spec.name])] += 1
        for name in {spec.name for spec in known if spec.conditions} - set(hp.values):
            inactive[name] += 1
    return SampleReport(
        samples=samples,
        branches={name: dict(sorted(c.items())) for name, c in branches.items()},
        inactive=dict(inactive),
        min_params=min(counts) if counts else None,
        max_params=max(counts) if counts else None,
        failures=tuple(failures),
    )


def _shape(tensor: Any) -> str:
    shape = getattr(tensor, "shape", None)
    if shape is None:
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
