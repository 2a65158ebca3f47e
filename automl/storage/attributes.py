"""What the store holds beyond Optuna's own columns: every key, and the typed record behind it.

Our facts live in Optuna study and trial user attributes under `automl:` keys, one JSON object
each (every attribute write is a commit, so a record is written in one go). This module is the
only place that names those keys or builds those JSON objects: the scheduler writes records with
`to_json`, readers get them back with `from_json`. `from_json` accepts what older versions
stored (missing fields take their defaults), so studies made before a field existed still read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

JSON = dict[str, Any]

# -- keys -----------------------------------------------------------------------------------------

# Study attributes.
SPACE = "automl:space"  # SpaceProvenance
SPACE_HISTORY = "automl:space_history"  # [sha256, …] of earlier space files (--allow-space-change)
DATA = "automl:data"  # DataSummary
OBJECTIVE = "automl:objective"  # StoredObjective
SETTINGS = "automl:settings"  # SearchSettings of the latest run
RUNS = "automl:runs"  # [RunEntry, …] of studies made before the automl_runs table (read only)

# Trial attributes.
LAUNCH = "automl:launch"  # TrialLaunch: who runs the trial
RESULT = "automl:result"  # TrialOutcome: how it ended
RETRY_OF = "automl:retry_of"  # int: the trial this one retries (set when it is enqueued)


class FailureKind(str, Enum):
    """Why a trial failed.

    The runner decides the first five; the scheduler the others. The scheduler replaces a
    worker after OOM or a timeout and stops the search after FATAL.
    """

    BUILD = "build"  # `build(hp)` raised (a bad configuration)
    NAN = "nan"  # the loss or the objective became NaN
    OOM = "oom"  # device or host out of memory
    ERROR = "error"  # any other exception while training
    FATAL = "fatal"  # every trial would fail the same way (e.g. the objective is not reported)
    DIED = "died"  # the worker process died (killed, crashed)
    STALE = "stale"  # left RUNNING by a scheduler that stopped
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM while it ran
    ABORTED = "aborted"  # the search stopped on an error while it ran (e.g. a failed write)
    TIMEOUT = "timeout"  # it ran past its deadline (hung input pipeline, device)

    @classmethod
    def parse(cls, value: object) -> FailureKind | None:
        """The kind stored as `value`; None when absent, ERROR for a kind this version lacks."""
        if value is None:
            return None
        try:
            return cls(str(value))
        except ValueError:
            return cls.ERROR


# -- study records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpaceProvenance:
    """The space file a study was searched with.

    Attributes:
        path: where it was.
        sha256: hash of its source; resuming with another file is refused.
        source: its full source text.
        parameters: every parameter (`ParamSpec.to_dict()`), once a worker has recorded them.
    """

    path: str = ""
    sha256: str = ""
    source: str = ""
    parameters: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> JSON:
        shown: JSON = {"path": self.path, "sha256": self.sha256, "source": self.source}
        if self.parameters:
            shown["parameters"] = [dict(p) for p in self.parameters]
        return shown

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SpaceProvenance:
        data = data or {}
        return cls(
            path=str(data.get("path", "")),
            sha256=str(data.get("sha256", "")),
            source=str(data.get("source", "")),
            parameters=tuple(dict(p) for p in data.get("parameters") or ()),
        )


@dataclass(frozen=True)
class DataSummary:
    """The data a study was searched on.

    Attributes:
        source: the data source as given (`digits`, a path, …).
        sha256: content hash of every split; resuming on other data is refused.
        input_shape: one image's shape.
        num_classes: number of classes.
        class_names: their names, in label order.
        sizes: images per split (`train`, `val`, `test`).
        notes: what loading changed (conversions, skipped files).
    """

    source: str = ""
    sha256: str = ""
    input_shape: tuple[int, ...] = ()
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    sizes: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_json(self) -> JSON:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "sizes": dict(self.sizes),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> DataSummary:
        data = data or {}
        return cls(
            source=str(data.get("source", "")),
            sha256=str(data.get("sha256", "")),
            input_shape=tuple(int(n) for n in data.get("input_shape") or ()),
            num_classes=int(data.get("num_classes", 0)),
            class_names=tuple(str(n) for n in data.get("class_names") or ()),
            sizes={str(k): int(v) for k, v in (data.get("sizes") or {}).items()},
            notes=tuple(str(n) for n in data.get("notes") or ()),
        )


@dataclass(frozen=True)
class StoredObjective:
    """The metric a study optimises and its direction."""

    metric: str
    direction: str

    def to_json(self) -> JSON:
        return {"metric": self.metric, "direction": self.direction}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, *, direction: str) -> StoredObjective:
        """`direction` is Optuna's, used when the attribute is missing (a study not made by us)."""
        data = data or {}
        return cls(str(data.get("metric", "value")), str(data.get("direction", direction)))


@dataclass(frozen=True)
class SearchSettings:
    """The settings of a study's latest `automl search` run (its CLI flags)."""

    trials: int = 0
    epochs: int | None = None
    workers: int | None = None
    gpus: tuple[int, ...] | None = None
    trials_per_gpu: int = 1
    sampler: str = "tpe"
    pruner: str = "sha"
    # The first rung's epoch; None in a study stored before it was recorded (its rungs began at 1).
    min_epochs: int | None = None
    timeout: float | None = None
    seed: int = 0
    objective: str | None = None
    max_failures: int = 5
    keep_checkpoints: int = 3
    patience: int | None = None
    data_options: Mapping[str, Any] = field(default_factory=dict)
    precision: str = "auto"
    jit: bool = False
    deterministic: bool = False
    repeats: int = 1

    @property
    def first_rung(self) -> int:
        """The epoch the study's pruner compares trials from: `min_epochs`, or 1 for a study
        stored before it was recorded."""
        return self.min_epochs if self.min_epochs is not None else 1

    def to_json(self) -> JSON:
        return {
            "trials": self.trials,
            "epochs": self.epochs,
            "workers": self.workers,
            "gpus": list(self.gpus) if self.gpus is not None else None,
            "trials_per_gpu": self.trials_per_gpu,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "min_epochs": self.min_epochs,
            "timeout": self.timeout,
            "seed": self.seed,
            "objective": self.objective,
            "max_failures": self.max_failures,
            "keep_checkpoints": self.keep_checkpoints,
            "patience": self.patience,
            "data_options": dict(self.data_options),
            "precision": self.precision,
            "jit": self.jit,
            "deterministic": self.deterministic,
            "repeats": self.repeats,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SearchSettings:
        data = data or {}
        default = cls()
        gpus = data.get("gpus")
        return cls(
            trials=int(data.get("trials", default.trials)),
            epochs=_optional_int(data.get("epochs")),
            workers=_optional_int(data.get("workers")),
            gpus=tuple(int(g) for g in gpus) if gpus is not None else None,
            trials_per_gpu=int(data.get("trials_per_gpu", default.trials_per_gpu)),
            sampler=str(data.get("sampler", default.sampler)),
            pruner=str(data.get("pruner", default.pruner)),
            min_epochs=_optional_int(data.get("min_epochs")),
            timeout=_optional_float(data.get("timeout")),
            seed=int(data.get("seed", default.seed)),
            objective=data.get("objective"),
            max_failures=int(data.get("max_failures", default.max_failures)),
            keep_checkpoints=int(data.get("keep_checkpoints", default.keep_checkpoints)),
            patience=_optional_int(data.get("patience")),
            data_options=dict(data.get("data_options") or {}),
            precision=str(data.get("precision", default.precision)),
            jit=bool(data.get("jit", default.jit)),
            deterministic=bool(data.get("deterministic", default.deterministic)),
            repeats=int(data.get("repeats", default.repeats)),
        )

    def shown(self) -> dict[str, Any]:
        """The settings a report lists: the ones that were set, without the data options."""
        return {k: v for k, v in self.to_json().items() if k != "data_options" and v is not None}


@dataclass(frozen=True)
class Owner:
    """The scheduler process that runs a trial or a search run.

    Host, boot and process id (and the process's start time) name one process of one boot of
    one machine: a pid alone is reused (after a reboot, a container restart, or in time).

    Attributes:
        host: its host name (`automl.lifetime.host_name`).
        pid: its process id.
        boot: the boot id of its host ('' when not recorded: older studies, not Linux).
        started: its start time in clock ticks after boot (0 when not recorded).
    """

    host: str = ""
    pid: int = 0
    boot: str = ""
    started: int = 0

    def to_json(self) -> JSON:
        shown: JSON = {"host": self.host, "pid": self.pid}
        if self.boot:
            shown["boot"] = self.boot
        if self.started:
            shown["started"] = self.started
        return shown

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Owner | None:
        if not data or "host" not in data:
            return None
        return cls(
            str(data["host"]),
            int(data.get("pid", 0)),
            str(data.get("boot", "")),
            int(data.get("started", 0)),
        )

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


@dataclass(frozen=True)
class RunEntry:
    """One `automl search` (or `automl worker`) run of a study.

    Attributes:
        started: when it started (Unix time).
        owner: the scheduler that ran it.
        target: its `--trials` target.
        slots: its worker slots.
        versions: versions of Python and the libraries that matter.
        role: `search`, or `worker` for a host that only contributes compute.
    """

    started: float
    owner: Owner | None = None
    target: int = 0
    slots: tuple[str, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    role: str = "search"

    def to_json(self) -> JSON:
        return {
            "started": self.started,
            **(self.owner.to_json() if self.owner else {}),
            "target": self.target,
            "slots": list(self.slots),
            "versions": dict(self.versions),
            "role": self.role,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunEntry:
        return cls(
            started=float(data.get("started", 0.0)),
            owner=Owner.from_json(data),
            target=int(data.get("target", 0)),
            slots=tuple(str(s) for s in data.get("slots") or ()),
            versions={str(k): str(v) for k, v in (data.get("versions") or {}).items()},
            role=str(data.get("role", "search")),
        )


def runs_to_json(runs: Sequence[RunEntry]) -> list[JSON]:
    return [run.to_json() for run in runs]


def runs_from_json(data: Sequence[Mapping[str, Any]] | None) -> tuple[RunEntry, ...]:
    return tuple(RunEntry.from_json(run) for run in data or ())


# -- trial records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialLaunch:
    """Where and how a trial runs: its worker slot, the scheduler that owns it, its seed.

    Attributes:
        slot: the worker slot.
        owner: the scheduler.
        resumed_epoch: for a retry that continued a killed trial mid-way, the epochs it took
            over (its reports carried over, its model loaded); None otherwise.
        seed: the trial's seed (Python, NumPy, TensorFlow, shuffling); None in studies made
            before it was recorded.
        threads: its worker's TensorFlow intra-op threads (a replay under `--deterministic`
            uses the same), or None for TensorFlow's default.
    """

    slot: str
    owner: Owner
    resumed_epoch: int | None = None
    seed: int | None = None
    threads: int | None = None

    def to_json(self) -> JSON:
        shown = {"slot": self.slot, **self.owner.to_json()}
        for key in ("resumed_epoch", "seed", "threads"):
            if getattr(self, key) is not None:
                shown[key] = getattr(self, key)
        return shown

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> TrialLaunch | None:
        if not data:
            return None
        return cls(
            str(data.get("slot", "")),
            Owner.from_json(data) or Owner(),
            _optional_int(data.get("resumed_epoch")),
            _optional_int(data.get("seed")),
            _optional_int(data.get("threads")),
        )


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended, beyond Optuna's state and value.

    Attributes:
        epochs_run: epochs trained.
        best_epoch: 1-based epoch of the best objective value.
        params_count: the model's parameter count.
        timings: seconds spent building, training, in total, per epoch.
        failure: why it failed.
        failure_kind: the class of failure.
        worker_rss_mib: the worker's resident memory when the trial ended.
        best_val_loss: the validation loss at the best epoch (breaks ties in the objective).
    """

    epochs_run: int = 0
    best_epoch: int | None = None
    params_count: int | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    failure: str | None = None
    failure_kind: FailureKind | None = None
    worker_rss_mib: float | None = None
    best_val_loss: float | None = None

    def to_json(self) -> JSON:
        return {
            "best_val_loss": self.best_val_loss,
            "worker_rss_mib": round(self.worker_rss_mib, 1)
            if self.worker_rss_mib is not None
            else None,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "params_count": self.params_count,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "failure": self.failure,
            "failure_kind": self.failure_kind.value if self.failure_kind else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> TrialOutcome | None:
        if not data:
            return None
        return cls(
            epochs_run=int(data.get("epochs_run") or 0),
            best_epoch=_optional_int(data.get("best_epoch")),
            params_count=_optional_int(data.get("params_count")),
            timings={str(k): float(v) for k, v in (data.get("timings") or {}).items()},
            failure=data.get("failure"),
            failure_kind=FailureKind.parse(data.get("failure_kind")),
            worker_rss_mib=_optional_float(data.get("worker_rss_mib")),
            best_val_loss=_optional_float(data.get("best_val_loss")),
        )

    @classmethod
    def failed(cls, kind: FailureKind, reason: str, *, epochs_run: int = 0) -> TrialOutcome:
        """The outcome of a trial the scheduler ends (died, stale, interrupted)."""
        return cls(epochs_run=epochs_run, failure=reason, failure_kind=kind)


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _optional_float(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


__all__ = [
    "DATA",
    "LAUNCH",
    "OBJECTIVE",
    "RESULT",
    "RETRY_OF",
    "RUNS",
    "SETTINGS",
    "SPACE",
    "SPACE_HISTORY",
    "DataSummary",
    "FailureKind",
    "Owner",
    "RunEntry",
    "SearchSettings",
    "SpaceProvenance",
    "StoredObjective",
    "TrialLaunch",
    "TrialOutcome",
]
