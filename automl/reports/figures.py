"""The report's figures as plain data, computed from records (no plotly, no TensorFlow).

Each function takes a `StudyRecord` (and retrain records) and returns small dataclasses that
`automl.reports.plotly_figures` draws. Plots that grow with trials × parameters are bounded here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from automl.storage.records import StudyRecord, TrialRecord, TrialState
from automl.storage.tables import (
    RetrainedTrial,
    RetrainRecord,
    chosen_retrained,
    retrained_trials,
)

MAX_CURVES = 400
MAX_PARALLEL_TRIALS = 500
MAX_PARALLEL_PARAMS = 8
MAX_SLICES = 4


@dataclass(frozen=True)
class History:
    """Objective of each finished trial and the best so far."""

    numbers: list[int]
    values: list[float]
    states: list[str]
    best_so_far: list[float]


def optimization_history(record: StudyRecord) -> History:
    maximize = record.direction == "maximize"
    numbers, values, states, best = [], [], [], []
    current: float | None = None
    for trial in sorted(record.trials, key=lambda t: t.number):
        if not trial.state.finished or trial.value is None or not math.isfinite(trial.value):
            continue
        numbers.append(trial.number)
        values.append(trial.value)
        states.append(trial.state.value)
        if trial.state is TrialState.COMPLETE and (
            current is None or (trial.value > current if maximize else trial.value < current)
        ):
            current = trial.value
        best.append(current if current is not None else math.nan)
    return History(numbers, values, states, best)


@dataclass(frozen=True)
class Curve:
    number: int
    state: str
    epochs: list[int]
    values: list[float]


@dataclass(frozen=True)
class Curves:
    curves: list[Curve]
    omitted: int


def learning_curves(record: StudyRecord, limit: int = MAX_CURVES) -> Curves:
    """Objective per epoch of every trial (pruned ones included); the best and the most recent
    trials when there are more than `limit`."""
    with_curves = [t for t in record.trials if t.intermediate]
    chosen = with_curves
    if len(with_curves) > limit:
        ranked = [t for t in record.ranked() if t.intermediate][: limit // 2]
        recent = sorted(with_curves, key=lambda t: -t.number)
        keep = {t.number for t in ranked}
        for trial in recent:
            if len(keep) >= limit:
                break
            keep.add(trial.number)
        chosen = [t for t in with_curves if t.number in keep]
    curves = [
        Curve(
            t.number,
            t.state.value,
            sorted(t.intermediate),
            [t.intermediate[e] for e in sorted(t.intermediate)],
        )
        for t in sorted(chosen, key=lambda t: t.number)
    ]
    return Curves(curves, omitted=len(with_curves) - len(chosen))


@dataclass(frozen=True)
class Importance:
    name: str
    value: float


IMPORTANCE_TITLE = (
    "Share of the objective's variance explained by each parameter's binned means "
    "(automl's own estimate; conditional parameters judged where active)"
)


@dataclass(frozen=True)
class OptunaImportances:
    """Optuna's importances of the parameters every complete trial has, or why there are none.

    Attributes:
        values: normalised importances, largest first (empty when not computed).
        title: the figure's title (names the evaluator and what it left out).
        reason: why there are none, shown instead of the figure.
    """

    values: list[Importance]
    title: str = ""
    reason: str = ""


def param_importances(record: StudyRecord, bins: int = 8) -> list[Importance]:
    """First-order importance of each parameter: the share of the objective's variance that
    the parameter's own averages explain, Var(E[y | x_i]) / Var(y), over the complete trials.

    Numbers are split into quantile bins (log-spaced ones on a log scale), categories kept as
    they are; a conditional parameter is judged over the trials where it is active, weighted
    by their share; small groups are shrunk toward the mean so a lucky single trial does not
    look important. The shares are normalised to sum to 1.
    """
    trials = [
        t
        for t in record.trials
        if t.state is TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    names = param_names(trials)
    if len(trials) < 4 or not names:
        return []
    values = [float(t.value) for t in trials]  # type: ignore[arg-type]
    mean = sum(values) / len(values)
    total = sum((v - mean) ** 2 for v in values)
    if total <= 0:
        return []
    scores = {}
    for name in names:
        # A conditional parameter is judged only where it is active (its parent's effect is
        # the parent's), weighted by how often it is.
        keys = _groups(trials, name, bins)
        active = [(k, v) for k, v in zip(keys, values, strict=True) if k != ("inactive",)]
        if len(active) < 4:
            continue
        local_mean = sum(v for _, v in active) / len(active)
        local_total = sum((v - local_mean) ** 2 for _, v in active)
        groups: dict[object, list[float]] = {}
        for key, value in active:
            groups.setdefault(key, []).append(value)
        if len(groups) < 2 or local_total <= 0:
            continue
        explained = 0.0
        for members in groups.values():
            count = len(members)
            shrunk = (sum(members) + local_mean) / (count + 1)  # one pseudo-trial at the mean
            explained += count * (shrunk - local_mean) ** 2
        scores[name] = explained / local_total * len(active) / len(values)
    norm = sum(scores.values()) or 1.0
    result = [Importance(name, score / norm) for name, score in scores.items()]
    return sorted(result, key=lambda imp: -imp.value)


def param_names(trials: Sequence[TrialRecord]) -> list[str]:
    """Every parameter name of the trials, in first-seen order."""
    names: dict[str, None] = {}
    for trial in trials:
        for name in trial.params:
            names.setdefault(name, None)
    return list(names)


def _groups(trials: Sequence[TrialRecord], name: str, bins: int) -> list[object]:
    """Each trial's group for one parameter: its category, or its quantile bin."""
    values = [t.params.get(name) for t in trials]
    present = [v for v in values if v is not None]
    numeric = present and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in present
    )
    if not numeric or len(set(present)) <= bins:
        return [("value", repr(v)) if v is not None else ("inactive",) for v in values]
    numbers = sorted(float(v) for v in present)
    log = numbers[0] > 0 and numbers[-1] / numbers[0] > 100
    scale = (lambda v: math.log10(v)) if log else (lambda v: v)
    scaled = sorted(scale(v) for v in numbers)
    edges = [scaled[min(len(scaled) - 1, round(k * len(scaled) / bins))] for k in range(1, bins)]
    return [
        ("bin", sum(1 for edge in edges if scale(float(v)) > edge))
        if v is not None
        else ("inactive",)
        for v in values
    ]


@dataclass(frozen=True)
class Axis:
    """One axis of the parallel-coordinates plot: values scaled to [0, 1] and tick labels."""

    name: str
    scaled: list[float | None]
    ticks: list[tuple[float, str]]


@dataclass(frozen=True)
class Parallel:
    numbers: list[int]
    objective: list[float]
    axes: list[Axis]
    omitted: int


def parallel_coordinates(
    record: StudyRecord, params: Sequence[str], limit: int = MAX_PARALLEL_TRIALS
) -> Parallel:
    """Complete trials across the most important parameters and the objective."""
    trials = [t for t in record.ranked() if t.state is TrialState.COMPLETE and t.value is not None]
    shown = trials[:limit]
    axes = [
        _axis(name, [t.params.get(name) for t in shown]) for name in params[:MAX_PARALLEL_PARAMS]
    ]
    objective = [float(t.value) for t in shown]  # type: ignore[arg-type]
    axes.append(_axis(record.metric, objective))
    return Parallel([t.number for t in shown], objective, axes, omitted=len(trials) - len(shown))


def _axis(name: str, values: Sequence[Any]) -> Axis:
    present = [v for v in values if v is not None]
    numeric = bool(present) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in present
    )
    if numeric:
        numbers = [float(v) for v in present]
        log = min(numbers) > 0 and max(numbers) / min(numbers) > 100
        transform = (lambda v: math.log10(v)) if log else (lambda v: v)
        low, high = transform(min(numbers)), transform(max(numbers))
        span = (high - low) or 1.0
        scaled = [None if v is None else (transform(float(v)) - low) / span for v in values]
        ticks = [
            (i / 4, _short(10 ** (low + span * i / 4) if log else low + span * i / 4))
            for i in range(5)
        ]
        return Axis(name, scaled, ticks)
    labels = sorted({str(v) for v in present})
    position = {
        label: (i / (len(labels) - 1) if len(labels) > 1 else 0.5) for i, label in enumerate(labels)
    }
    scaled = [None if v is None else position[str(v)] for v in values]
    return Axis(name, scaled, [(position[label], label) for label in labels])


@dataclass(frozen=True)
class Slice:
    name: str
    x: list[Any]
    y: list[float]
    numbers: list[int]
    categorical: bool


def slices(record: StudyRecord, params: Sequence[str]) -> list[Slice]:
    """Objective against each of the most important parameters (complete trials)."""
    trials = [t for t in record.trials if t.state is TrialState.COMPLETE and t.value is not None]
    result = []
    for name in params[:MAX_SLICES]:
        points = [
            (t.params[name], float(t.value or 0.0), t.number) for t in trials if name in t.params
        ]
        categorical = any(isinstance(x, (str, bool)) for x, _, _ in points)
        result.append(
            Slice(
                name,
                [str(x) if categorical else x for x, _, _ in points],
                [y for _, y, _ in points],
                [n for _, _, n in points],
                categorical,
            )
        )
    return result


@dataclass(frozen=True)
class Span:
    slot: str
    number: int
    start: float  # seconds since the study's first trial started
    end: float
    state: str


def worker_timeline(record: StudyRecord) -> list[Span]:
    """Which slot ran which trial, when."""
    started = [t.started for t in record.trials if t.started is not None]
    if not started:
        return []
    origin = min(started)
    spans = []
    for trial in record.trials:
        if trial.started is None or trial.completed is None:
            continue
        spans.append(
            Span(
                trial.slot or "?",
                trial.number,
                (trial.started - origin).total_seconds(),
                (trial.completed - origin).total_seconds(),
                trial.state.value,
            )
        )
    return spans


@dataclass(frozen=True)
class Winner:
    """The retrained winner and how it compares with its trial."""

    trial: int
    runs: list[RetrainRecord]
    checkpoint: RetrainRecord | None
    validation_value: float | None
    metric: str
    class_names: list[str]
    mean_accuracy: float
    std_accuracy: float
    metrics: Mapping[str, Any] = field(default_factory=dict)
    search_best: int | None = None
    others: list[RetrainedTrial] = field(default_factory=list)


def winner(record: StudyRecord, retrains: Sequence[RetrainRecord]) -> Winner | None:
    """The retrained winner (None if nothing was retrained): of several retrained trials, the
    best mean test accuracy (`chosen_retrained`); else the newest retrained trial."""
    trials = retrained_trials(retrains)
    if not trials:
        return None
    best = record.best()
    newest = next(r.trial for r in retrains if r.source == "retrain")
    chosen = chosen_retrained(retrains, best.number if best else None) or next(
        t for t in trials if t.trial == newest
    )
    trial = chosen.trial
    checkpoint = next((r for r in retrains if r.source == "checkpoint" and r.trial == trial), None)
    trial_record = next((t for t in record.trials if t.number == trial), None)
    return Winner(
        trial=trial,
        runs=list(chosen.runs),
        checkpoint=checkpoint,
        validation_value=trial_record.value if trial_record else None,
        metric=record.metric,
        class_names=list(record.data.class_names),
        mean_accuracy=chosen.mean_accuracy,
        std_accuracy=chosen.std_accuracy,
        metrics=chosen.runs[0].metrics,
        search_best=best.number if best else None,
        others=[t for t in trials if t.trial != trial],
    )


def _short(value: float) -> str:
    return f"{value:.3g}"
