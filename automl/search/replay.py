"""Replaying a stored trial (`automl trial --replay STUDY:N`): everything from the store.

The space file (refused unless its hash is the stored one), the trial's parameters and seed,
the study's data (its hash checked), epoch budget, patience, repeats, precision, XLA and
determinism are read from the study; the trial trains for the epochs it ran, and its
per-epoch objective is compared with the stored curve. A study searched with
`--deterministic` is reproduced exactly on CPU (same TensorFlow, same thread count); without
it, the two curves differ by run-to-run noise, which the comparison measures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from automl.errors import StoreError, UsageError
from automl.search.seeds import trial_seed
from automl.spaces.loader import Objective
from automl.storage.records import StudyRecord, TrialRecord

if TYPE_CHECKING:
    from automl.search.runner import TrialResult
    from automl.storage.store import StudyStore


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay of one trial runs with, all read from the store.

    Attributes:
        record: the study.
        trial: the stored trial.
        seed: its seed.
        threads: its worker's intra-op threads (None: TensorFlow's default).
        budget: the study's epoch budget (schedules in a space may depend on it).
        epochs: the epochs the trial ran (the replay stops there, as the pruner or early
            stopping stopped the trial).
        objective: the study's objective.
        deterministic: whether the study was searched with `--deterministic`.
        dataset_path: the study's saved copy of its data.
        notes: what may make the replay differ from the stored curve.
    """

    record: StudyRecord
    trial: TrialRecord
    seed: int
    threads: int | None
    budget: int
    epochs: int
    objective: Objective
    deterministic: bool
    dataset_path: Path
    notes: tuple[str, ...] = ()


def parse_target(text: str) -> tuple[str, int]:
    """`STUDY:N` → (study, trial number).

    Raises:
        UsageError: not of that form.
    """
    study, sep, number = text.rpartition(":")
    if not sep or not study or not number.isdigit():
        raise UsageError(
            f"--replay {text!r}: expected STUDY:N, the study and the trial number as "
            "`automl show STUDY` lists them, e.g. --replay cnn:20."
        )
    return study, int(number)


def plan_replay(store: StudyStore, study: str, number: int) -> ReplayPlan:
    """The replay of trial `number` of a study.

    Raises:
        StoreError: no such study, no such trial, or one that has not trained (no parameters
            or epochs).
    """
    record = store.record(study)
    trial = next((t for t in record.trials if t.number == number), None)
    if trial is None:
        numbers = [t.number for t in record.trials]
        known = f"its trials are {min(numbers)}–{max(numbers)}" if numbers else "it has none"
        raise StoreError(
            f"study {record.name!r} has no trial {number} ({known}); see automl show {record.name}."
        )
    epochs = trial.epochs_run or max(trial.intermediate, default=0)
    if not trial.params or epochs == 0:
        raise StoreError(
            f"trial {number} of {record.name!r} has not trained an epoch yet "
            f"({trial.state.value}); replay a finished trial."
        )
    settings = record.settings
    notes = []
    seed = trial.seed
    if seed is None:  # a study made before trial seeds were recorded
        seed = trial_seed(settings.seed, number)
        notes.append(f"its seed was not recorded; using the search's rule ({seed})")
    if trial.resumed_epoch:
        notes.append(
            f"it continued a killed trial after epoch {trial.resumed_epoch} (from its saved "
            "model); the replay trains from epoch 1"
        )
    if not settings.deterministic:
        notes.append(
            "the search ran without --deterministic: the curves differ by run-to-run noise"
        )
    return ReplayPlan(
        record=record,
        trial=trial,
        seed=seed,
        threads=trial.threads,
        budget=settings.epochs or epochs,
        epochs=epochs,
        objective=Objective(record.metric, record.direction),  # type: ignore[arg-type]
        deterministic=settings.deterministic,
        dataset_path=store.artifacts(study).dataset_path,
        notes=tuple(notes),
    )


def replay_trial(
    plan: ReplayPlan,
    *,
    space_path: str | None = None,
    deterministic: bool = False,
    on_epoch: Callable[[int, Mapping[str, float]], object] | None = None,
) -> TrialResult:
    """Train the planned trial again, as its worker trained it.

    Args:
        plan: from `plan_replay`.
        space_path: the space file, if it moved since the search (its hash must match).
        deterministic: force op determinism even if the study did not use it.
        on_epoch: called with each epoch's metrics.

    Raises:
        SpaceError: the space file changed since the search.
        StoreError: the data changed since the search.
    """
    from automl.deploy.retrain import space_hash_matches, study_dataset, study_space

    record = plan.record
    space_hash_matches(record, space_path)  # refused before anything is imported or run
    from automl.tfruntime import import_tensorflow, set_precision

    import_tensorflow(threads=plan.threads, deterministic=deterministic or plan.deterministic)
    set_precision(record.settings.precision)
    dataset = study_dataset(record, plan.dataset_path)
    space = study_space(record, space_path)
    from automl.search.runner import run_trial
    from automl.spaces import FixedAnswers

    def hook(epoch: int, metrics: Mapping[str, float]) -> bool:
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        return epoch < plan.epochs  # stop where the trial stopped

    return run_trial(
        space,
        dataset,
        FixedAnswers(dict(plan.trial.params), source=f"trial {plan.trial.number}"),
        epochs=plan.budget,
        seed=plan.seed,
        objective=plan.objective,
        on_epoch=hook,
        patience=record.settings.patience,
        jit=record.settings.jit,
        repeats=record.settings.repeats,
    )


@dataclass(frozen=True)
class CurveComparison:
    """A replayed per-epoch curve against the stored one.

    Attributes:
        epochs: epochs compared.
        first_difference: the first epoch whose values differ, or None when all are equal.
        largest: the largest absolute difference.
    """

    epochs: int
    first_difference: int | None
    largest: float

    @property
    def exact(self) -> bool:
        return self.first_difference is None


def compare_curves(stored: Mapping[int, float], replayed: Mapping[int, float]) -> CurveComparison:
    """Compare two per-epoch curves (1-based epochs) on the epochs both have."""
    epochs = sorted(set(stored) & set(replayed))
    first = None
    largest = 0.0
    for epoch in epochs:
        a, b = stored[epoch], replayed[epoch]
        same = a == b or (math.isnan(a) and math.isnan(b))
        if not same:
            first = epoch if first is None else first
            largest = max(largest, abs(a - b))
    if len(stored) != len(replayed) and first is None:
        first = (epochs[-1] + 1) if epochs else 1  # one curve is longer
    return CurveComparison(len(epochs), first, largest)
