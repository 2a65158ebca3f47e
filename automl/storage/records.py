"""Read models: what the rest of the program (CLI tables, reports, deploy) reads about a study.

They are plain frozen dataclasses built from Optuna's frozen trials, so reports never touch
Optuna objects and can be tested with hand-made records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from automl.storage.attributes import DataSummary, RunEntry, SearchSettings, SpaceProvenance

Value = int | float | str | bool | None


class TrialState(str, Enum):
    """A trial's state, in ranking order."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    RUNNING = "running"
    WAITING = "waiting"

    @property
    def finished(self) -> bool:
        """Complete and pruned trials count toward `--trials`."""
        return self in (TrialState.COMPLETE, TrialState.PRUNED)


def counts_json(counts: Mapping[TrialState, int]) -> dict[str, int]:
    """Trials by state as JSON gives them (`{"complete": 3, "pruned": 5, …}`)."""
    return {state.value: n for state, n in counts.items()}


@dataclass(frozen=True)
class StudySummary:
    """One line of `automl studies`."""

    name: str
    counts: Mapping[TrialState, int]
    best_value: float | None
    direction: str
    last_update: datetime | None

    def to_json(self) -> dict[str, Any]:
        """As `automl studies --json` and the service's `/api/studies` give it."""
        return {
            "name": self.name,
            "counts": counts_json(self.counts),
            "best_value": self.best_value,
            "direction": self.direction,
            "last_update": self.last_update.isoformat() if self.last_update else None,
        }


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the program reads it.

    Attributes:
        number: Optuna's trial number (0-based, as `optuna trials` shows it).
        state: complete, pruned, failed, running or waiting.
        value: the objective (best epoch for complete trials, last epoch for pruned ones).
        params: the sampled parameters.
        intermediate: objective value per epoch (1-based).
        best_epoch: 1-based epoch of the best objective value.
        epochs_run: epochs trained.
        params_count: the model's parameter count.
        started: when the trial started.
        completed: when it ended.
        slot: the worker slot that ran it (`cpu0`, `gpu1`, …).
        failure: why it failed.
        retry_of: the trial this one retries, if any.
        timings: seconds spent building, training, in total, per epoch.
        resumed_epoch: for a retry that continued its killed trial mid-way, the epochs it took
            over; None otherwise.
        best_val_loss: the validation loss at the best epoch (breaks ties in the objective).
        seed: the trial's seed (None in studies made before it was recorded).
        threads: its worker's TensorFlow intra-op threads, or None for TensorFlow's default.
    """

    number: int
    state: TrialState
    value: float | None = None
    params: Mapping[str, Value] = field(default_factory=dict)
    intermediate: Mapping[int, float] = field(default_factory=dict)
    best_epoch: int | None = None
    epochs_run: int = 0
    params_count: int | None = None
    started: datetime | None = None
    completed: datetime | None = None
    slot: str | None = None
    failure: str | None = None
    retry_of: int | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    resumed_epoch: int | None = None
    best_val_loss: float | None = None
    seed: int | None = None
    threads: int | None = None

    @property
    def duration(self) -> float | None:
        """Wall seconds from start to end (None while running)."""
        if self.started is None or self.completed is None:
            return None
        return (self.completed - self.started).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """As `automl show --json` and the service's API give it."""
        return {
            "number": self.number,
            "state": self.state.value,
            "value": self.value,
            "params": dict(self.params),
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "epochs_run": self.epochs_run,
            "resumed_epoch": self.resumed_epoch,
            "seed": self.seed,
            "params_count": self.params_count,
            "slot": self.slot,
            "started": self.started.isoformat() if self.started else None,
            "completed": self.completed.isoformat() if self.completed else None,
            "duration": self.duration,
            "failure": self.failure,
            "retry_of": self.retry_of,
            "intermediate": {str(k): v for k, v in self.intermediate.items()},
        }


# What breaks a tie in the objective, within a trial (its best epoch) and between trials:
# validation accuracy on a few hundred images moves in steps of one image, so ties are common,
# and the lower validation loss is the choice least flattered by that noise.
TIEBREAK_METRIC = "val_loss"


def rank_key(
    direction: str,
    value: float | None,
    epochs_run: int,
    params_count: int | None,
    number: int,
    *,
    tiebreak: float | None = None,
) -> tuple[float, float, float, float, float]:
    """Sort key of one trial among trials of the same state: objective (best first), then the
    validation loss at its best epoch (`tiebreak`, lower first; unknown last), then cost (fewer
    epochs, then fewer parameters), then age. The report, retraining and the search's choice of
    which checkpoints to keep all rank with it, so ties resolve the same way."""
    sign = -1.0 if direction == "maximize" else 1.0
    objective = sign * value if value is not None and math.isfinite(value) else math.inf
    loss = tiebreak if tiebreak is not None and math.isfinite(tiebreak) else math.inf
    return (objective, loss, float(epochs_run), float(params_count or 0), float(number))


@dataclass(frozen=True)
class StudyRecord:
    """A study with everything stored to reproduce and report it.

    Attributes:
        name: the study name.
        metric: the objective metric (`val_accuracy`, …).
        direction: `maximize` or `minimize`.
        space: path, hash, source and parameters of the space file.
        data: source, hash, shapes, sizes, classes of the data.
        settings: the settings of the latest run (epochs, sampler, pruner, …).
        runs: one entry per `automl search` run of the study (start, host, versions, target).
        trials: every trial, in number order.
    """

    name: str
    metric: str
    direction: str
    space: SpaceProvenance = field(default_factory=SpaceProvenance)
    data: DataSummary = field(default_factory=DataSummary)
    settings: SearchSettings = field(default_factory=SearchSettings)
    runs: tuple[RunEntry, ...] = ()
    trials: tuple[TrialRecord, ...] = ()

    def counts(self) -> dict[TrialState, int]:
        counts = dict.fromkeys(TrialState, 0)
        for trial in self.trials:
            counts[trial.state] += 1
        return counts

    @property
    def finished(self) -> int:
        return sum(1 for t in self.trials if t.state.finished)

    def ranked(self) -> list[TrialRecord]:
        """Trials ranked by state (complete, pruned, failed, running, waiting), then objective
        (best first), then validation loss at the best epoch, then cost (fewer epochs, then
        fewer parameters)."""
        order = list(TrialState)

        def key(trial: TrialRecord) -> tuple[float, ...]:
            return (
                float(order.index(trial.state)),
                *rank_key(
                    self.direction,
                    trial.value,
                    trial.epochs_run,
                    trial.params_count,
                    trial.number,
                    tiebreak=trial.best_val_loss,
                ),
            )

        return sorted(self.trials, key=key)

    def best(self) -> TrialRecord | None:
        """The best complete trial."""
        ranked = self.ranked()
        return ranked[0] if ranked and ranked[0].state is TrialState.COMPLETE else None

    def wall_time(self) -> float | None:
        """Seconds from the first trial's start to the last trial's end."""
        starts = [t.started for t in self.trials if t.started is not None]
        ends = [t.completed for t in self.trials if t.completed is not None]
        if not starts or not ends:
            return None
        return (max(ends) - min(starts)).total_seconds()
