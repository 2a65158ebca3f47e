"""What a search tells its observer: frozen events, and the `SearchObserver` role that the CLI
(live display, plain lines) and the service implement. The library never prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from automl.search.engines import Bracket
from automl.spaces.loader import Objective
from automl.storage.attributes import DataSummary, Owner
from automl.storage.records import StudyRecord, TrialState


@dataclass(frozen=True)
class SearchStart:
    """What the observer learns when the search starts."""

    study: str
    storage: str
    resumed: bool
    finished: int
    target: int
    slots: tuple[str, ...]
    sampler: str
    pruner: str
    budget: str
    brackets: tuple[Bracket, ...]
    epochs: int
    objective: Objective
    data: DataSummary
    record: StudyRecord
    requeued: tuple[int, ...] = ()


@dataclass(frozen=True)
class TrialEvent:
    """A trial that ended."""

    number: int
    slot: str
    state: TrialState
    value: float | None
    epochs_run: int
    best_epoch: int | None
    seconds: float
    failure: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSummary:
    """How the search ended.

    Attributes:
        study: the study name.
        record: the study as stored at the end.
        target: the `--trials` target.
        stopped: why it stopped before the target, or None.
        seconds: wall time of this run.
        utilisation: for each slot, the fraction of time it ran a trial.
        artifacts: the study's artifact folder.
        storage: the storage URL as shown (password hidden).
        storage_url: the storage URL itself.
        finisher: on a study shared by several hosts, the scheduler elected to retrain the
            winner and write the report when it is not this one; None when it is this one
            (or the store is not shared).
    """

    study: str
    record: StudyRecord
    target: int
    stopped: str | None
    seconds: float
    utilisation: dict[str, float]
    artifacts: Path
    storage: str
    storage_url: str = field(repr=False)  # may hold a password: never in a repr
    finisher: Owner | None = None


class SearchObserver(Protocol):
    """Receives progress; the CLI renders it (live display, plain lines, or nothing)."""

    def search_started(self, start: SearchStart) -> None: ...

    def trial_started(self, number: int, slot: str) -> None: ...

    def trial_epoch(self, number: int, slot: str, epoch: int, value: float | None) -> None: ...

    def trial_finished(self, event: TrialEvent) -> None: ...

    def note(self, text: str) -> None: ...


class NullObserver:
    """Ignores progress."""

    def search_started(self, start: SearchStart) -> None:
        pass

    def trial_started(self, number: int, slot: str) -> None:
        pass

    def trial_epoch(self, number: int, slot: str, epoch: int, value: float | None) -> None:
        pass

    def trial_finished(self, event: TrialEvent) -> None:
        pass

    def note(self, text: str) -> None:
        pass
