"""Running a search: everything a user can get wrong is checked before any worker starts (space
settings, devices, names, data, store, resume checks), stale trials are recovered, then the
scheduler's loop runs with a real pool of worker processes and the run is summarised.
"""

from __future__ import annotations

import importlib.util
import signal
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from automl.data import Dataset, load_dataset, save_dataset
from automl.errors import Interrupted, UsageError
from automl.search import engines
from automl.search.checkpoints import CheckpointKeeper
from automl.search.config import SearchConfig
from automl.search.devices import Gpu, discover_gpus, usable_cpus
from automl.search.events import NullObserver, SearchObserver, SearchStart, SearchSummary
from automl.search.pool import WorkerPool, plan_slots, warm_up
from automl.search.scheduler import Scheduler
from automl.search.study import SearchStudy, StudyPlan, data_summary, this_owner
from automl.search.worker import WorkerSetup
from automl.spaces.hyperparameters import ParamSpec
from automl.spaces.loader import Objective, read_space_settings
from automl.storage import attributes as keys
from automl.storage.artifacts import ArtifactStore
from automl.storage.attributes import Owner, SearchSettings
from automl.storage.records import StudyRecord
from automl.storage.store import StudyStore
from automl.storage.urls import check_study_name, default_storage_url


def run_search(
    config: SearchConfig,
    observer: SearchObserver | None = None,
    *,
    gpu_probe: Callable[[], list[Gpu]] = discover_gpus,
    cpus: int | None = None,
    dataset: Dataset | None = None,
) -> SearchSummary:
    """Run (or resume) a search to its `trials` target.

    Everything a user can get wrong is checked before any worker starts. `dataset`, when
    given, is searched instead of loading `config.data` (arrays from a notebook).

    Raises:
        SpaceError, DataError, StoreError, UsageError: bad input (exit 2).
        AutoMLError: the search stopped (too many failures).
        KeyboardInterrupt: after recording every running trial.
    """
    observer = observer or NullObserver()
    if config.sampler == "kt-hyperband" and config.pruner != "none":
        # Keras Tuner's Hyperband decides each trial's epochs: its rounds are the pruning.
        config = replace(config, pruner="none")
    if config.trials < 1:
        raise UsageError(f"--trials must be at least 1, got {config.trials}.")
    if config.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {config.repeats}.")
    if config.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise UsageError(
            "--tensorboard needs the tensorboard package; install it (pip install "
            "'automl-keras[tensorboard]') or search without --tensorboard."
        )
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
    if config.min_epochs is not None and (
        problem := engines.min_epochs_problem(
            config.min_epochs, epochs=epochs, pruner=config.pruner
        )
    ):
        raise UsageError(f"{problem}.")
    engines.make_pruner(config.pruner, epochs=epochs)  # validate names before any work
    if config.sampler not in engines.SAMPLERS:
        raise UsageError(
            f"unknown --sampler {config.sampler!r}; use one of {', '.join(engines.SAMPLERS)}."
        )
    if config.sampler != "grid" and not config.sampler.startswith("kt-"):
        # grid and Keras Tuner's oracles need the space's parameters, known after preflight
        engines.make_sampler(config.sampler, seed=config.seed, slots=len(slots))
    storage_url = config.storage or default_storage_url()
    if config.role == "worker" and storage_url.startswith("sqlite"):
        raise UsageError(
            "automl worker joins a study that several hosts share in PostgreSQL (--storage "
            "postgresql://…); on one machine, automl search already uses every GPU or core."
        )
    warm_up(config.executor)  # the workers' TensorFlow import overlaps loading the data
    if dataset is None:
        dataset = load_dataset(config.data or settings.data or "digits", config.data_options)
    store = StudyStore(
        storage_url,
        create=True,
        create_folder=config.storage is None,
        # Heartbeats tell hosts sharing a study which trials' schedulers are gone. A SQLite
        # study has one scheduler (the search lock), whose dead trials its owner record names.
        heartbeat_interval=None if storage_url.startswith("sqlite") else config.heartbeat,
    )
    min_epochs = _first_rung(config, store, name, epochs)
    pruner = engines.make_pruner(config.pruner, epochs=epochs, min_epochs=min_epochs)
    artifacts = store.artifacts(name)
    lock = artifacts.search_lock() if store.sqlite_path is not None else nullcontext()
    with lock, _InterruptFlag() as flag:
        plan = StudyPlan(
            name=name,
            space=settings,
            objective=objective,
            dataset=dataset,
            settings=config.settings(epochs=epochs, min_epochs=min_epochs),
            target=config.trials,
            slots=tuple(s.name for s in slots),
            allow_space_change=config.allow_space_change,
            role=config.role,
        )
        # A new study is created once the first worker has built the space (its preflight),
        # so a space that fails to build leaves no study behind; a resumed one is checked now.
        study = SearchStudy.prepare(store, plan, pruner)
        _prepare_dataset(artifacts, dataset)
        artifacts.sweep_temporary_files()
        requeued = study.recover_stale(exclusive=store.sqlite_path is not None)
        record = (
            store.record(name)
            if study.resumed
            else StudyRecord(name=name, metric=objective.metric, direction=objective.direction)
        )
        budget, brackets = engines.pruner_budget(
            config.pruner, epochs=epochs, min_epochs=min_epochs
        )
        observer.search_started(
            SearchStart(
                study=name,
                storage=store.shown_url,
                resumed=study.resumed,
                finished=record.finished,
                target=config.trials,
                slots=plan.slots,
                sampler=config.sampler,
                pruner=config.pruner,
                budget=budget,
                brackets=brackets,
                epochs=epochs,
                objective=objective,
                data=data_summary(dataset),
                record=record,
                requeued=tuple(requeued),
            )
        )
        checkpoints = CheckpointKeeper(
            artifacts, direction=objective.direction, keep=config.keep_checkpoints
        )
        checkpoints.note_trials(record.trials)
        started = time.monotonic()
        stopped: str | None = None
        busy = dict.fromkeys(plan.slots, 0.0)
        ready_at: float | None = None
        if record.finished < config.trials:
            # A resumed study knows the parameters of this very space file (a changed one was
            # stored without them): no worker builds every branch again.
            specs = (
                tuple(ParamSpec.from_dict(p) for p in record.space.parameters)
                if record.space.sha256 == settings.sha256
                else ()
            )
            setup = WorkerSetup(
                space_path=str(settings.path),
                space_sha256=settings.sha256,
                dataset_path=str(artifacts.dataset_path),
                objective=objective,
                executor=config.executor,
                preflight=not specs,
                patience=config.patience,
                log_dir=str(artifacts.logs_dir(per_host=store.sqlite_path is None)),
                precision=config.precision,
                jit=config.jit,
                tensorboard=(
                    str(Path(config.tensorboard).resolve()) if config.tensorboard else None
                ),
                repeats=config.repeats,
                deterministic=config.deterministic,
            )
            scheduler = Scheduler(
                config,
                study,
                WorkerPool(slots, setup),
                epochs=epochs,
                objective=objective,
                artifacts=artifacts,
                checkpoints=checkpoints,
                observer=observer,
                finished=record.finished,
                slowest_epoch=max(
                    (t.timings["first_epoch"] for t in record.trials if "first_epoch" in t.timings),
                    default=None,
                ),
                specs=specs,
            )
            deadline = started + config.timeout if config.timeout else None
            scheduler.run(deadline, interrupted=lambda: flag.signum)
            stopped, busy, ready_at = scheduler.stopped, scheduler.busy, scheduler.ready_at
        finisher = None
        if store.sqlite_path is None and config.role == "search" and stopped is None:
            finisher = _elect_finisher(
                store, study, config.trials, observer, interrupted=lambda: flag.signum
            )
        elapsed = time.monotonic() - started
        window = time.monotonic() - (ready_at or started)
        return SearchSummary(
            study=name,
            record=store.record(name),
            target=config.trials,
            stopped=stopped,
            seconds=elapsed,
            utilisation={slot: (b / window if window > 0 else 0.0) for slot, b in busy.items()},
            artifacts=artifacts.root,
            storage=store.shown_url,
            storage_url=store.url,
            finisher=finisher,
        )


def _first_rung(config: SearchConfig, store: StudyStore, name: str, epochs: int) -> int:
    """The epoch of the pruner's first rung: `--min-epochs`, else the one the study was
    searched with (a resumed study keeps comparing trials at the same epochs; one stored
    before the setting existed began at 1), else the default for a new study."""
    if config.min_epochs is not None:
        return config.min_epochs
    if name in store.study_names():
        stored = SearchSettings.from_json(store.read_study(name).user_attrs.get(keys.SETTINGS))
        min_epochs = stored.first_rung
        if problem := engines.min_epochs_problem(min_epochs, epochs=epochs, pruner=config.pruner):
            raise UsageError(f"study {name!r} prunes from epoch {min_epochs}: {problem}.")
        return min_epochs
    return engines.DEFAULT_MIN_EPOCHS


def _elect_finisher(
    store: StudyStore,
    study: SearchStudy,
    target: int,
    observer: SearchObserver,
    *,
    interrupted: Callable[[], int | None] = lambda: None,
) -> Owner | None:
    """On a shared study: one host retrains the winner and writes the report, once per
    `--trials` target (a lock row in the database; the first to finish takes it). It waits
    for the trials other hosts still run (failing those of hosts that stopped, after their
    grace period), so that it ranks them all. Returns who does it when it is not this host.

    Raises:
        Interrupted: Ctrl-C or SIGTERM while it waits; the job is given up for another run.
    """
    if not study.created:
        return None
    name, job = study.study.study_name, f"finish:{target}"
    tables = store.tables()
    try:
        holder = tables.claim(name, job, this_owner())
    finally:
        tables.close()
    if holder is not None:
        return holder
    waited = False
    while True:
        signum = interrupted()
        if signum is not None:
            tables = store.tables()
            try:
                tables.release(name, job)
            finally:
                tables.close()
            raise Interrupted(signum)
        study.recover_stale()
        _, running = study.progress()
        if not running:
            return None
        if not waited:
            observer.note(
                f"Waiting for {running} trial(s) other hosts run, before retraining and the report."
            )
            waited = True
        time.sleep(FINISH_POLL)


# Seconds between two looks at the trials other hosts still run, before the report.
FINISH_POLL = 2.0


def _prepare_dataset(artifacts: ArtifactStore, dataset: Dataset) -> None:
    """Write the dataset the workers load, unless the same one is already there."""
    path = artifacts.dataset_path
    if path.is_file():
        from automl.data import load_saved_dataset

        try:
            if load_saved_dataset(path).sha256 == dataset.sha256:
                return
        except (OSError, ValueError, KeyError):
            pass
    save_dataset(dataset, path)


class _InterruptFlag:
    """Ctrl-C and SIGTERM set a flag that the loop checks between messages, so the interrupt
    never lands inside a store operation (SQLite turns it into a failed query that Optuna may
    retry, losing the interrupt) nor between creating a study and storing its attributes. A
    second signal interrupts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


__all__ = ["run_search"]
