"""Every message between the scheduler and its workers, both directions, as frozen dataclasses.

They cross a `multiprocessing` pipe (pickled), so they hold plain values and other frozen
dataclasses only. Both sides dispatch with `match`:

    scheduler → worker:  TrialRequest · Answer · AnswerError · Continue · Prune · Stop
    worker → scheduler:  Ready · Ask · EpochEnded · TrialDone · Fatal
    pool → scheduler:    WorkerDied (made by the pool when a worker's pipe ends)

One trial is a conversation: `TrialRequest`, then any number of `Ask` → `Answer | AnswerError`
while `build(hp)` runs, then per epoch `EpochEnded` → `Continue | Prune`, then `TrialDone`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from automl.errors import AutoMLError, DataError, SpaceError, StoreError, UsageError, one_line
from automl.spaces.hyperparameters import ParamSpec, Value

if TYPE_CHECKING:
    from automl.search.resume import ResumePoint
    from automl.search.runner import TrialResult

# -- scheduler → worker ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRequest:
    """Run one trial.

    Attributes:
        number: the trial number.
        seed: its seed.
        epochs: its epoch budget.
        checkpoint: where to keep its best-epoch model, or None.
        checkpoint_threshold: write the checkpoint only when the trial's best value beats this
            (the study's current k-th best), so most trials never write one.
        resume: where the trial keeps its resume point (`.../resume/trial-N`), or None.
        resume_from: the resume point of the killed trial this one retries (or, with Keras
            Tuner's Hyperband, of the trial it is promoted from): continue after its epoch.
            None to start at epoch 0.
        keep_final: keep a resume point after the last epoch (a later Hyperband round may
            continue from it).
    """

    number: int
    seed: int
    epochs: int
    checkpoint: str | None = None
    checkpoint_threshold: float | None = None
    resume: str | None = None
    resume_from: ResumePoint | None = None
    keep_final: bool = False


@dataclass(frozen=True)
class Answer:
    """The value of the parameter the worker asked for."""

    value: Value


@dataclass(frozen=True)
class AnswerError:
    """The parameter cannot be sampled (e.g. its distribution changed within the study)."""

    reason: str


@dataclass(frozen=True)
class Continue:
    """Train the next epoch."""


@dataclass(frozen=True)
class Prune:
    """Stop the trial now: the pruner decided it is not promising."""


@dataclass(frozen=True)
class Stop:
    """Exit the worker process."""


# -- worker → scheduler ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The worker has loaded the space and data and can take trials.

    Attributes:
        pid: the worker's process id.
        slot: its slot name.
        env: the device environment it runs with (`CUDA_VISIBLE_DEVICES`, threads).
        specs: every parameter of the space, when this worker ran the preflight.
        seconds: how long starting took.
    """

    pid: int
    slot: str
    env: Mapping[str, str] = field(default_factory=dict)
    specs: tuple[ParamSpec, ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True)
class Ask:
    """`build(hp)` reached a parameter: the scheduler's Optuna trial must answer it."""

    spec: ParamSpec


@dataclass(frozen=True)
class EpochEnded:
    """An epoch ended with these metrics (1-based epoch); the worker waits for a verdict."""

    epoch: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class TrialDone:
    """The trial ended (complete, pruned or failed: the result says)."""

    result: TrialResult
    rss_mib: float


class FatalKind(str, Enum):
    """What a worker that cannot start ran into; it decides the error (and exit code) shown."""

    SPACE = "space"
    DATA = "data"
    STORE = "store"
    USAGE = "usage"
    STARTUP = "startup"  # anything else: an import error, a broken installation, …


_ERRORS: dict[FatalKind, type[AutoMLError]] = {
    FatalKind.SPACE: SpaceError,
    FatalKind.DATA: DataError,
    FatalKind.STORE: StoreError,
    FatalKind.USAGE: UsageError,
    FatalKind.STARTUP: AutoMLError,
}


@dataclass(frozen=True)
class Fatal:
    """The worker cannot run any trial: every worker would fail the same way.

    Attributes:
        kind: what kind of error it was.
        message: the one-line message shown to the user.
    """

    kind: FatalKind
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException, slot: str) -> Fatal:
        """The message for an exception raised while a worker started."""
        for kind, error in _ERRORS.items():
            if kind is not FatalKind.STARTUP and isinstance(exc, error):
                return cls(kind, str(exc))
        return cls(
            FatalKind.STARTUP,
            f"worker {slot} could not start: {type(exc).__name__}: {one_line(exc)}",
        )

    def error(self) -> AutoMLError:
        """The error the search raises for it."""
        return _ERRORS[self.kind](self.message)


# -- pool → scheduler -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerDied:
    """The worker's pipe ended: it exited or was killed (`exitcode` as `Process.exitcode`)."""

    exitcode: int | None


ToWorker = TrialRequest | Answer | AnswerError | Continue | Prune | Stop
FromWorker = Ready | Ask | EpochEnded | TrialDone | Fatal | WorkerDied

__all__ = [
    "Answer",
    "AnswerError",
    "Ask",
    "Continue",
    "EpochEnded",
    "Fatal",
    "FatalKind",
    "FromWorker",
    "Prune",
    "Ready",
    "Stop",
    "ToWorker",
    "TrialDone",
    "TrialRequest",
    "WorkerDied",
]
