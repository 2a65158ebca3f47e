"""The scheduler: one process owns the study and drives a pool of workers.

It prepares everything a search needs before any trial runs (space settings, data, store,
resume checks), asks Optuna for trials, hands them to idle workers, answers their `hp` calls,
reports each epoch to the pruner, and tells Optuna the result. Faults cost one trial: a dead
worker's trial fails and is retried once, an OOM replaces the worker, NaN fails the trial, and
too many consecutive failures stop the search. Ctrl-C records every running trial and re-queues
it. The scheduler never imports TensorFlow; progress goes to a `SearchObserver`.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from automl.data import DataOptions, Dataset, load_dataset, save_dataset
from automl.errors import AutoMLError, SpaceError, StoreError, UsageError
from automl.search import engines
from automl.search.devices import Gpu, discover_gpus, usable_cpus
from automl.search.pool import WorkerHandle, WorkerPool, describe_exit, plan_slots
from automl.search.runner import FailureKind, Outcome, TrialResult
from automl.search.worker import ReadyInfo, TrialRequest, WorkerSetup
from automl.spaces.hyperparameters import ParamSpec
from automl.spaces.loader import Objective, SpaceSettings, read_space_settings
from automl.storage import store as keys
from automl.storage.artifacts import ArtifactStore
from automl.storage.records import StudyRecord, TrialRecord, TrialState, rank_key
from automl.storage.store import StudyStore, owner_is_alive, owner_tag
from automl.storage.urls import check_study_name, default_storage_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchConfig:
    """Every setting of `automl search` (each CLI flag matches a field).

    Attributes:
        space: the space file.
        trials: the study's target of finished (complete + pruned) trials.
        study: study name; None for the space file's stem.
        storage: storage URL; None for `$AUTOML_STORAGE` or `runs/automl.db`.
        data: data source; None for the space's DATA, else digits.
        data_options: splits, bad-image handling.
        epochs: maximum epochs per trial; None for the space's EPOCHS, else 10.
        workers: CPU workers (no GPU); None for one per core, up to 8.
        gpus: GPU indices to use; None for every visible GPU.
        trials_per_gpu: trials packed on each GPU.
        sampler: `tpe`, `random`, `gp`, `cmaes`, `grid` or `qmc`.
        pruner: `hyperband`, `sha`, `median`, `percentile`, `patient` or `none`.
        timeout: seconds after which no new trial starts; None for none.
        seed: seed of the sampler and of each trial (seed + trial number).
        objective: overrides the space's OBJECTIVE (`metric[:direction]`).
        max_failures: consecutive failed trials that stop the search.
        allow_space_change: resume even if the space file or data changed.
        keep_checkpoints: best-epoch checkpoints kept (of the best complete trials).
        patience: early-stopping patience in epochs; None for none.
        recycle_after: trials after which a worker is replaced (memory hygiene).
        recycle_memory_mib: resident-memory growth after which a worker is replaced.
        executor: `keras`, or `module:factory` for benchmarks.
    """

    space: str
    trials: int
    study: str | None = None
    storage: str | None = None
    data: str | None = None
    data_options: DataOptions = field(default_factory=DataOptions)
    epochs: int | None = None
    workers: int | None = None
    gpus: tuple[int, ...] | None = None
    trials_per_gpu: int = 1
    sampler: str = "tpe"
    pruner: str = "sha"
    timeout: float | None = None
    seed: int = 0
    objective: str | None = None
    max_failures: int = 5
    allow_space_change: bool = False
    keep_checkpoints: int = 3
    patience: int | None = 5
    recycle_after: int = 100
    recycle_memory_mib: float = 1024.0
    executor: str = "keras"

    def settings(self) -> dict[str, Any]:
        """The JSON-ready settings stored with the study."""
        return {
            "trials": self.trials,
            "epochs": self.epochs,
            "workers": self.workers,
            "gpus": list(self.gpus) if self.gpus is not None else None,
            "trials_per_gpu": self.trials_per_gpu,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "timeout": self.timeout,
            "seed": self.seed,
            "objective": self.objective,
            "max_failures": self.max_failures,
            "keep_checkpoints": self.keep_checkpoints,
            "patience": self.patience,
            "data_options": self.data_options.to_dict(),
        }


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
    brackets: tuple[engines.Bracket, ...]
    epochs: int
    objective: Objective
    data: dict[str, Any]
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
    """

    study: str
    record: StudyRecord
    target: int
    stopped: str | None
    seconds: float
    utilisation: dict[str, float]
    artifacts: Path
    storage: str
    storage_url: str


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


def run_search(
    config: SearchConfig,
    observer: SearchObserver | None = None,
    *,
    gpu_probe: Callable[[], list[Gpu]] = discover_gpus,
    cpus: int | None = None,
) -> SearchSummary:
    """Run (or resume) a search to its `trials` target.

    Everything a user can get wrong is checked before any worker starts.

    Raises:
        SpaceError, DataError, StoreError, UsageError: bad input (exit 2).
        AutoMLError: the search stopped (too many failures).
        KeyboardInterrupt: after recording every running trial.
    """
    observer = observer or NullObserver()
    if config.trials < 1:
        raise UsageError(f"--trials must be at least 1, got {config.trials}.")
    settings = read_space_settings(config.space)
    objective = Objective.parse(config.objective) if config.objective else settings.objective
    epochs = config.epochs or settings.epochs or 10
    slots = plan_slots(
        gpu_probe(),
        cpus=cpus or usable_cpus(),
        workers=config.workers,
        gpu_ids=config.gpus,
        trials_per_gpu=config.trials_per_gpu,
    )
    name = check_study_name(config.study or settings.path.stem)
    engines.make_pruner(config.pruner, epochs=epochs)  # validate names before any work
    if config.sampler not in engines.SAMPLERS:
        raise UsageError(
            f"unknown --sampler {config.sampler!r}; use one of {', '.join(engines.SAMPLERS)}."
        )
    if config.sampler != "grid":  # grid needs the space's parameters, known after preflight
        engines.make_sampler(config.sampler, seed=config.seed, slots=len(slots))
    dataset = load_dataset(config.data or settings.data or "digits", config.data_options)
    store = StudyStore(
        config.storage or default_storage_url(),
        create=True,
        create_folder=config.storage is None,
        heartbeat_interval=None,
    )
    artifacts = store.artifacts(name)
    lock = artifacts.search_lock() if store.sqlite_path is not None else nullcontext()
    with lock:
        search = _Search(
            config, settings, objective, epochs, slots, dataset, store, artifacts, name, observer
        )
        return search.run()


@dataclass
class _Running:
    trial: Any
    handle: WorkerHandle
    started: float
    epoch: int = 0


class _Search:
    """The state of one run of the scheduler loop."""

    def __init__(
        self,
        config: SearchConfig,
        settings: SpaceSettings,
        objective: Objective,
        epochs: int,
        slots: Sequence[Any],
        dataset: Dataset,
        store: StudyStore,
        artifacts: ArtifactStore,
        name: str,
        observer: SearchObserver,
    ) -> None:
        self.config = config
        self.settings = settings
        self.objective = objective
        self.epochs = epochs
        self.slots = slots
        self.dataset = dataset
        self.store = store
        self.artifacts = artifacts
        self.name = name
        self.observer = observer
        self.running: dict[int, _Running] = {}
        self.consecutive_failures = 0
        self.last_failure = ""
        self.stopped: str | None = None
        self.fatal: AutoMLError | None = None
        self.busy: dict[str, float] = {slot.name: 0.0 for slot in slots}
        self.finished = 0
        # number -> (value, rank key) of the complete trials
        self.complete: dict[int, tuple[float, tuple[float, ...]]] = {}
        self.started = time.monotonic()
        self.ready_at: float | None = None
        self.retried: set[int] = set()

    # -- preparation ------------------------------------------------------------------------

    def _open_study(self) -> tuple[Any, bool]:
        import optuna

        direction = self.objective.direction
        pruner = engines.make_pruner(self.config.pruner, epochs=self.epochs)
        exists = self.name in self.store.study_names()
        if exists:
            study = optuna.load_study(
                study_name=self.name, storage=self.store.storage, pruner=pruner
            )
            self._check_resume(study)
        else:
            study = optuna.create_study(
                study_name=self.name, storage=self.store.storage, direction=direction, pruner=pruner
            )
            study.set_user_attr(keys.SPACE, self._space_attr())
            study.set_user_attr(keys.DATA, self.dataset.describe())
            study.set_user_attr(
                keys.OBJECTIVE, {"metric": self.objective.metric, "direction": direction}
            )
        study.set_user_attr(keys.SETTINGS, {**self.config.settings(), "epochs": self.epochs})
        runs = list(study.user_attrs.get(keys.RUNS) or [])
        runs.append(
            {
                "started": time.time(),
                **owner_tag(),
                "target": self.config.trials,
                "slots": [s.name for s in self.slots],
                "versions": _versions(),
            }
        )
        study.set_user_attr(keys.RUNS, runs)
        return study, exists

    def _space_attr(self) -> dict[str, Any]:
        return {
            "path": str(self.settings.path),
            "sha256": self.settings.sha256,
            "source": self.settings.source,
        }

    def _check_resume(self, study: Any) -> None:
        attrs = study.user_attrs
        if keys.SPACE not in attrs:
            raise StoreError(
                f"study {self.name!r} exists in {self.store.shown_url} but was not made by "
                "automl; use --study NEW for a new study."
            )
        stored = attrs[keys.OBJECTIVE]
        if stored.get("direction") != self.objective.direction or (
            stored.get("metric") != self.objective.metric
        ):
            raise StoreError(
                f"study {self.name!r} optimises {stored.get('metric')} ({stored.get('direction')}),"
                f" not {self.objective}; drop --objective or use --study NEW."
            )
        changes = []
        if attrs[keys.SPACE].get("sha256") != self.settings.sha256:
            changes.append(f"the space file changed ({attrs[keys.SPACE].get('path')})")
        if attrs.get(keys.DATA, {}).get("sha256") != self.dataset.sha256:
            changes.append(
                f"the data changed ({attrs.get(keys.DATA, {}).get('source')} → "
                f"{self.dataset.source})"
            )
        if changes and not self.config.allow_space_change:
            raise StoreError(
                f"cannot resume study {self.name!r}: {' and '.join(changes)} since it was "
                "made; pass --allow-space-change to continue it anyway, or --study NEW to start "
                "a new study."
            )
        if changes:
            history = list(attrs.get("automl:space_history") or [])
            history.append(attrs[keys.SPACE].get("sha256"))
            study.set_user_attr("automl:space_history", history)
            study.set_user_attr(keys.SPACE, self._space_attr())
            study.set_user_attr(keys.DATA, self.dataset.describe())

    def _prepare_dataset(self) -> None:
        path = self.artifacts.dataset_path
        if path.is_file():
            from automl.data import load_saved_dataset

            try:
                if load_saved_dataset(path).sha256 == self.dataset.sha256:
                    return
            except (OSError, ValueError, KeyError):
                pass
        save_dataset(self.dataset, path)

    def _recover_stale(self, study: Any) -> list[int]:
        """Fail and re-queue trials left RUNNING by a scheduler that died."""
        from optuna.trial import TrialState as OptunaState

        requeued = []
        for trial in study.get_trials(deepcopy=False, states=(OptunaState.RUNNING,)):
            owner = trial.user_attrs.get(keys.LAUNCH)
            if self.store.sqlite_path is None and owner_is_alive(owner):
                continue  # another live scheduler (another host) owns it
            storage = self.store.storage
            storage.set_trial_user_attr(
                trial._trial_id,
                keys.RESULT,
                {"failure": "the scheduler stopped while it ran", "failure_kind": "stale"},
            )
            storage.set_trial_state_values(trial._trial_id, state=OptunaState.FAIL)
            if self._requeue(study, trial.number, trial.params, trial.user_attrs):
                requeued.append(trial.number)
        return requeued

    def _requeue(
        self, study: Any, number: int, params: dict[str, Any], attrs: dict[str, Any]
    ) -> bool:
        """Run the same parameters again, once per original trial."""
        if attrs.get(keys.RETRY_OF) is not None or number in self.retried:
            return False
        self.retried.add(number)
        study.enqueue_trial(dict(params), user_attrs={keys.RETRY_OF: number}, skip_if_exists=False)
        return True

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> SearchSummary:
        study, resumed = self._open_study()
        self._prepare_dataset()
        requeued = self._recover_stale(study)
        record = self.store.record(self.name)
        finished = self.finished = record.finished
        self.complete = {}
        for t in record.trials:
            if t.state is TrialState.COMPLETE and t.value is not None:
                self._note_complete(t.number, t.value, t.epochs_run, t.params_count)
        budget, brackets = engines.pruner_budget(self.config.pruner, epochs=self.epochs)
        self.observer.search_started(
            SearchStart(
                study=self.name,
                storage=self.store.shown_url,
                resumed=resumed,
                finished=finished,
                target=self.config.trials,
                slots=tuple(s.name for s in self.slots),
                sampler=self.config.sampler,
                pruner=self.config.pruner,
                budget=budget,
                brackets=brackets,
                epochs=self.epochs,
                objective=self.objective,
                data=self.dataset.describe(),
                record=record,
                requeued=tuple(requeued),
            )
        )
        if finished >= self.config.trials:
            self.stopped = None
            return self._summary()
        setup = WorkerSetup(
            space_path=str(self.settings.path),
            dataset_path=str(self.artifacts.dataset_path),
            objective=(self.objective.metric, self.objective.direction),
            executor=self.config.executor,
            preflight=True,
            patience=self.config.patience,
            log_dir=str(self.artifacts.root / "logs"),
        )
        pool = WorkerPool(self.slots, setup)
        deadline = self.started + self.config.timeout if self.config.timeout else None
        with _InterruptFlag() as interrupted:
            try:
                pool.start()
                self._loop(study, pool, deadline, interrupted)
            except KeyboardInterrupt:
                self._record_interrupted(study)
                raise
            finally:
                pool.stop()
                self._keep_best_checkpoints()
        if self.fatal is not None:
            raise self.fatal
        return self._summary()

    def _loop(
        self, study: Any, pool: WorkerPool, deadline: float | None, interrupted: _InterruptFlag
    ) -> None:
        sampler_ready = False
        while True:
            if interrupted.set:
                raise KeyboardInterrupt
            finished = self.finished
            stopping = self.stopped is not None or self.fatal is not None
            if deadline is not None and time.monotonic() >= deadline and not stopping:
                self.stopped = f"--timeout {self.config.timeout:g} s reached"
                self.observer.note(
                    f"Timeout reached: no new trials; {len(self.running)} running trial(s) finish."
                )
                stopping = True
            if (finished >= self.config.trials or stopping) and not self.running:
                return
            if sampler_ready and not stopping:
                for handle in pool.workers:
                    if (
                        handle.ready
                        and handle.trial is None
                        and (finished + len(self.running) < self.config.trials)
                    ):
                        self._launch(study, handle)
            for handle, message in pool.wait(timeout=0.5):
                kind = message[0]
                if kind == "ready":
                    info: ReadyInfo = message[1]
                    handle.ready, handle.ready_info = True, info
                    if self.ready_at is None:
                        self.ready_at = time.monotonic()
                    if not sampler_ready and info.specs:
                        specs = [ParamSpec.from_dict(s) for s in info.specs]
                        study.sampler = engines.make_sampler(
                            self.config.sampler,
                            seed=self.config.seed,
                            slots=len(self.slots),
                            specs=specs,
                        )
                        self._store_param_table(study, specs)
                        sampler_ready = True
                    elif not sampler_ready and handle is pool.workers[0]:
                        study.sampler = engines.make_sampler(
                            self.config.sampler, seed=self.config.seed, slots=len(self.slots)
                        )
                        sampler_ready = True
                elif kind == "fatal":
                    self.fatal = SpaceError(message[1])
                    self.stopped = message[1]
                    return
                elif kind == "ask":
                    self._answer(study, handle, message[1])
                elif kind == "epoch":
                    self._epoch(handle, message[1], message[2])
                elif kind == "done":
                    self._done(study, pool, handle, message[1], message[2])
                elif kind == "died":
                    self._died(study, pool, handle, message[1])

    def _launch(self, study: Any, handle: WorkerHandle) -> None:
        trial = study.ask()
        number = trial.number
        trial.set_user_attr(keys.LAUNCH, {"slot": handle.slot.name, **owner_tag()})
        request = TrialRequest(
            number=number,
            seed=self.config.seed * 1_000_003 + number,
            epochs=self.epochs,
            checkpoint=str(self.artifacts.checkpoint_path(number)),
            checkpoint_threshold=self._checkpoint_threshold(),
        )
        handle.trial = number
        self.running[number] = _Running(trial, handle, time.monotonic())
        handle.send(("trial", request))
        self.observer.trial_started(number, handle.slot.name)

    def _answer(self, study: Any, handle: WorkerHandle, spec_dict: dict[str, Any]) -> None:
        running = self.running[handle.trial]  # type: ignore[index]
        spec = ParamSpec.from_dict(spec_dict)
        try:
            value = engines.suggest(running.trial, spec)
        except (ValueError, TypeError) as exc:
            handle.send(("answer_error", f"'{spec.name}': {exc}"))
            return
        handle.send(("answer", value))

    def _epoch(self, handle: WorkerHandle, epoch: int, metrics: dict[str, float]) -> None:
        running = self.running[handle.trial]  # type: ignore[index]
        running.epoch = epoch
        value = metrics.get(self.objective.metric)
        prune = False
        if value is not None and math.isfinite(value):
            running.trial.report(value, epoch)
            # At the last epoch the trial has had its whole budget: it completes, never prunes.
            prune = epoch < self.epochs and running.trial.should_prune()
        handle.send(("prune",) if prune else ("continue",))
        self.observer.trial_epoch(running.trial.number, handle.slot.name, epoch, value)

    def _done(
        self, study: Any, pool: WorkerPool, handle: WorkerHandle, result: TrialResult, rss: float
    ) -> None:
        number = handle.trial
        assert number is not None
        running = self.running.pop(number)
        handle.trial = None
        handle.trials_run += 1
        handle.last_rss = rss
        if handle.first_rss is None:
            handle.first_rss = rss
        seconds = time.monotonic() - running.started
        self.busy[handle.slot.name] += seconds
        trial = running.trial
        self._set_result_attrs(trial, result, rss)
        if result.history:
            self.artifacts.write_json(
                self.artifacts.history_path(number), result.history, durable=False
            )
        state = self._tell(study, trial, result)
        if state.finished:
            self.finished += 1
        if state is TrialState.COMPLETE and result.best_value is not None:
            self._note_complete(number, result.best_value, result.epochs_run, result.params_count)
        if result.outcome is Outcome.FAILED:
            self.consecutive_failures += 1
            self.last_failure = result.failure or "unknown"
            if result.failure_kind is FailureKind.FATAL:
                self.fatal = SpaceError(result.failure or "the space is wrong")
                self.stopped = result.failure
            elif self.consecutive_failures >= self.config.max_failures:
                self._stop_for_failures()
        else:
            self.consecutive_failures = 0
        self.observer.trial_finished(
            TrialEvent(
                number,
                handle.slot.name,
                state,
                result.best_value,
                result.epochs_run,
                result.best_epoch,
                seconds,
                result.failure,
                dict(result.params),
            )
        )
        if result.checkpoint is not None:
            self._keep_best_checkpoints()
        grown = (rss - (handle.first_rss or rss)) > self.config.recycle_memory_mib
        if (
            result.failure_kind is FailureKind.OOM
            or grown
            or (handle.trials_run >= self.config.recycle_after)
        ):
            why = (
                "out of memory"
                if result.failure_kind is FailureKind.OOM
                else f"resident memory grew to {rss:.0f} MiB"
                if grown
                else f"{handle.trials_run} trials run"
            )
            self.observer.note(f"Replacing worker {handle.slot.name} ({why}).")
            pool.replace(handle)

    def _tell(self, study: Any, trial: Any, result: TrialResult) -> TrialState:
        from optuna.trial import TrialState as OptunaState

        if result.outcome is Outcome.COMPLETE and result.best_value is not None:
            state, told = TrialState.COMPLETE, {"values": result.best_value}
        elif result.outcome is Outcome.PRUNED:
            state, told = TrialState.PRUNED, {"state": OptunaState.PRUNED}
        else:
            state, told = TrialState.FAILED, {"state": OptunaState.FAIL}
        self._tell_optuna(study, trial, **told)
        return state

    def _tell_optuna(self, study: Any, trial: Any, **told: Any) -> None:
        try:
            study.tell(trial, **told)
        except RuntimeError as exc:
            # The grid sampler calls study.stop() once every combination has been tried; that
            # is only allowed inside study.optimize. The trial is stored before it raises.
            if "study.stop" not in str(exc).lower():
                raise
            self.stopped = self.stopped or "the grid sampler has tried every combination"

    @staticmethod
    def _set_result_attrs(trial: Any, result: TrialResult, rss: float) -> None:
        trial.set_user_attr(
            keys.RESULT,
            {
                "worker_rss_mib": round(rss, 1),
                "epochs_run": result.epochs_run,
                "best_epoch": result.best_epoch,
                "params_count": result.params_count,
                "timings": {k: round(v, 4) for k, v in result.timings.items()},
                "failure": result.failure,
                "failure_kind": result.failure_kind.value if result.failure_kind else None,
            },
        )

    def _died(self, study: Any, pool: WorkerPool, handle: WorkerHandle, code: int | None) -> None:
        from optuna.trial import TrialState as OptunaState

        reason = f"worker {handle.slot.name} died ({describe_exit(code)})"
        number = handle.trial
        if number is not None:
            running = self.running.pop(number)
            self.busy[handle.slot.name] += time.monotonic() - running.started
            running.trial.set_user_attr(
                keys.RESULT,
                {"failure": reason, "failure_kind": "died", "epochs_run": running.epoch},
            )
            params, attrs = running.trial.params, running.trial.user_attrs
            self._tell_optuna(study, running.trial, state=OptunaState.FAIL)
            retried = self._requeue(study, number, params, attrs)
            self.consecutive_failures += 1
            self.last_failure = reason
            self.observer.trial_finished(
                TrialEvent(
                    number,
                    handle.slot.name,
                    TrialState.FAILED,
                    None,
                    running.epoch,
                    None,
                    time.monotonic() - running.started,
                    reason + ("; re-queued" if retried else ""),
                    dict(params),
                )
            )
            if self.consecutive_failures >= self.config.max_failures:
                self._stop_for_failures()
        elif not handle.ready:
            self.consecutive_failures += 1
            self.last_failure = f"{reason} while starting"
            if self.consecutive_failures >= self.config.max_failures:
                self._stop_for_failures()
                return
        self.observer.note(f"{reason}; starting a new worker.")
        pool.replace(handle)

    def _stop_for_failures(self) -> None:
        self.stopped = (
            f"{self.consecutive_failures} consecutive trials failed (last: {self.last_failure})"
        )
        self.fatal = AutoMLError(
            f"search stopped: {self.stopped}; fix the space or data (try automl trial), or "
            "raise --max-failures."
        )

    def _record_interrupted(self, study: Any) -> None:
        from optuna.trial import TrialState as OptunaState

        for number, running in list(self.running.items()):
            running.trial.set_user_attr(
                keys.RESULT,
                {
                    "failure": "interrupted (Ctrl-C)",
                    "failure_kind": "interrupted",
                    "epochs_run": running.epoch,
                },
            )
            params, attrs = running.trial.params, running.trial.user_attrs
            self._tell_optuna(study, running.trial, state=OptunaState.FAIL)
            self._requeue(study, number, params, attrs)
        self.running.clear()

    # -- bookkeeping ------------------------------------------------------------------------

    def _note_complete(
        self, number: int, value: float, epochs_run: int, params_count: int | None
    ) -> None:
        key = rank_key(self.objective.direction, value, epochs_run, params_count, number)
        self.complete[number] = (value, key)

    def _best_complete(self) -> list[int]:
        """Numbers of the complete trials, best first, ranked as the study's record ranks them
        (so the checkpoints kept are those `retrain --from-checkpoint` and the report look for)."""
        return sorted(self.complete, key=lambda number: self.complete[number][1])

    def _checkpoint_threshold(self) -> float | None:
        keep = self.config.keep_checkpoints
        if keep <= 0:
            return math.inf if self.objective.direction == "maximize" else -math.inf
        if len(self.complete) < keep:
            return None
        return self.complete[self._best_complete()[keep - 1]][0]

    def _keep_best_checkpoints(self) -> None:
        keep = set(self._best_complete()[: self.config.keep_checkpoints])
        self.artifacts.keep_checkpoints(keep | set(self.running))

    def _store_param_table(self, study: Any, specs: list[ParamSpec]) -> None:
        space = dict(study.user_attrs.get(keys.SPACE) or {})
        space["parameters"] = [s.to_dict() for s in specs]
        study.set_user_attr(keys.SPACE, space)

    def _summary(self) -> SearchSummary:
        record = self.store.record(self.name)
        elapsed = time.monotonic() - self.started
        window = time.monotonic() - (self.ready_at or self.started)
        utilisation = {
            slot: (busy / window if window > 0 else 0.0) for slot, busy in self.busy.items()
        }
        return SearchSummary(
            study=self.name,
            record=record,
            target=self.config.trials,
            stopped=self.stopped,
            seconds=elapsed,
            utilisation=utilisation,
            artifacts=self.artifacts.root,
            storage=self.store.shown_url,
            storage_url=self.store.url,
        )


class _InterruptFlag:
    """Ctrl-C sets a flag that the loop checks between messages, so the interrupt never lands
    inside a store operation (SQLite turns it into a failed query that Optuna may retry,
    losing the interrupt). A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.set = False
        self._previous: Any = None

    def __enter__(self) -> _InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _versions() -> dict[str, str]:
    versions = {}
    for dist in ("automl-keras", "tensorflow", "keras", "optuna", "keras-tuner", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    import platform

    versions["python"] = platform.python_version()
    return versions


__all__ = [
    "NullObserver",
    "SearchConfig",
    "SearchObserver",
    "SearchStart",
    "SearchSummary",
    "TrialEvent",
    "TrialRecord",
    "run_search",
]
