"""The study of one search run: opening it with what reproduces it, and every write the
scheduler makes to it.

Opening creates the study (space provenance, data summary, objective) or resumes it (refusing a
changed space, data or objective unless allowed), records the run's settings and appends a run
entry. During the run, trials are asked with their launch record, told with their typed outcome,
and failed and re-queued (once) when their worker dies, the search is interrupted, or the
scheduler that ran them is gone. Optuna's private attributes are never used.
"""

from __future__ import annotations

import datetime
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from typing import TYPE_CHECKING, Any

from automl.errors import StoreError
from automl.lifetime import boot_id, host_name, process_alive, process_started
from automl.search import engines
from automl.search.resume import ResumePoint
from automl.search.runner import Outcome, TrialResult
from automl.search.seeds import trial_seed
from automl.spaces.hyperparameters import ParamSpec, Value
from automl.spaces.loader import Objective, SpaceSettings
from automl.storage import attributes as keys
from automl.storage.attributes import (
    DataSummary,
    FailureKind,
    Owner,
    RunEntry,
    SearchSettings,
    SpaceProvenance,
    StoredObjective,
    TrialLaunch,
    TrialOutcome,
)
from automl.storage.records import TrialRecord, TrialState
from automl.storage.store import StudyStore

if TYPE_CHECKING:
    import optuna

    from automl.data import Dataset


# Seconds a host joining a study waits for the host creating it to store its attributes.
CREATION_WAIT = 30.0
# A running trial with no owner recorded is a scheduler's killed between asking for it and
# recording itself (milliseconds) once it is this old, heartbeat or not.
UNOWNED_GRACE = 60


@dataclass(frozen=True)
class StudyPlan:
    """What a search run brings to its study.

    Attributes:
        name: the study name.
        space: the space file's settings (path, hash, source).
        objective: the metric and direction.
        dataset: the data (its hash is checked on resume).
        settings: the run's settings.
        target: the `--trials` target.
        slots: the worker slots' names.
        allow_space_change: resume although the space file or data changed.
        role: `search`, or `worker` (joins an existing study, never creates one).
    """

    name: str
    space: SpaceSettings
    objective: Objective
    dataset: Dataset
    settings: SearchSettings
    target: int
    slots: tuple[str, ...]
    allow_space_change: bool = False
    role: str = "search"


def data_summary(dataset: Dataset) -> DataSummary:
    """The stored summary of a dataset."""
    return DataSummary(
        source=dataset.source,
        sha256=dataset.sha256,
        input_shape=tuple(dataset.input_shape),
        num_classes=dataset.num_classes,
        class_names=tuple(dataset.class_names),
        sizes=dataset.sizes(),
        notes=tuple(dataset.notes),
    )


def this_owner() -> Owner:
    """This scheduler process: host, boot, pid and start time, to tell a dead scheduler from a
    live one (and a pid reused by another process from the one that ran a trial)."""
    pid = os.getpid()
    return Owner(host_name(), pid, boot_id(), process_started(pid) or 0)


def owner_alive(owner: Owner | None) -> bool | None:
    """Whether the scheduler `owner` still runs: True or False where this host can tell; None
    where it cannot (another host, or no owner recorded): the trial's heartbeat decides."""
    if owner is None or owner.host != host_name():
        return None
    here = boot_id()
    if owner.boot and here and owner.boot != here:
        return False  # this host rebooted since: no process of that boot runs
    if not process_alive(owner.pid):
        return False
    if owner.started:
        started = process_started(owner.pid)
        if started is not None and started != owner.started:
            return False  # the pid now names another process (a container restart: PID 1)
    return True


class SearchStudy:
    """An open Optuna study and the scheduler's writes to it.

    A new study is created only by `create()`, once the space has passed its preflight in a
    worker: a space file that fails to build never leaves a study behind (fixing the file would
    then meet "the space file changed").

    Args:
        study: the Optuna study, or None until `create()` makes it.
        store: the store it lives in.
        plan: what the run brings (needed by `create()`).
        pruner: the pruner (needed by `create()`).
    """

    def __init__(
        self,
        study: optuna.Study | None,
        store: StudyStore,
        *,
        plan: StudyPlan | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> None:
        self._study = study
        self.store = store
        self.resumed = study is not None
        self.exhausted = False  # the grid sampler has tried every combination
        self._plan = plan
        self._pruner = pruner
        self._retried: set[int] = set()
        self._trial_ids: dict[int, int] = {}  # trial number -> storage id, for heartbeats

    @property
    def created(self) -> bool:
        """Whether the study exists (resumed, or made by `create()`)."""
        return self._study is not None

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            raise RuntimeError("the study is created by SearchStudy.create() first")
        return self._study

    @classmethod
    def prepare(
        cls, store: StudyStore, plan: StudyPlan, pruner: optuna.pruners.BasePruner
    ) -> SearchStudy:
        """Resume an existing study after checking it is the same search, or get ready to
        create a new one with `create()`.

        Raises:
            StoreError: the study was not made by automl, optimises another objective, or
                its space file or data changed (without `allow_space_change`).
        """
        import optuna

        if plan.name in store.study_names():
            study = optuna.load_study(study_name=plan.name, storage=store.storage, pruner=pruner)
            if store.sqlite_path is None:
                # Another host may be creating it this moment: its attributes follow at once.
                deadline = time.monotonic() + CREATION_WAIT
                while _left_half_created(study) and time.monotonic() < deadline:
                    time.sleep(0.5)
            if _left_half_created(study):
                # A kill between creating the study and storing its attributes: it holds
                # nothing (no trial, no attribute but ours), so it is made again.
                optuna.delete_study(study_name=plan.name, storage=store.storage)
            else:
                _check_resume(study, plan, store.shown_url)
                _record_run(store, study, plan)
                return cls(study, store, plan=plan, pruner=pruner)
        if plan.role == "worker":
            raise StoreError(
                f"no study {plan.name!r} in {store.shown_url} to work on; start it with "
                "automl search SPACE --storage URL --study NAME (on any host), then run "
                "automl worker with the same arguments."
            )
        return cls(None, store, plan=plan, pruner=pruner)

    @classmethod
    def open(
        cls, store: StudyStore, plan: StudyPlan, pruner: optuna.pruners.BasePruner
    ) -> tuple[SearchStudy, bool]:
        """`prepare` then `create`: the study, and whether it existed (a resume)."""
        search = cls.prepare(store, plan, pruner)
        resumed = search.resumed
        search.create()
        return search, resumed

    def create(self) -> None:
        """Create the new study with what reproduces it (nothing when it exists already).

        Its attributes are written right after it, before any trial; a run interrupted in
        between (Ctrl-C and SIGTERM wait for the loop, only a kill can) leaves an empty study
        that the next run makes again.
        """
        import optuna

        if self._study is not None:
            return
        plan, pruner = self._plan, self._pruner
        assert plan is not None and pruner is not None
        try:
            study = optuna.create_study(
                study_name=plan.name,
                storage=self.store.storage,
                direction=plan.objective.direction,
                pruner=pruner,
            )
        except optuna.exceptions.DuplicatedStudyError:
            # Another host created it since `prepare`: join it, as the same search or not at all.
            joined = SearchStudy.prepare(self.store, plan, pruner)
            self._study, self.resumed = joined.study, True
            return
        study.set_user_attr(keys.DATA, data_summary(plan.dataset).to_json())
        study.set_user_attr(
            keys.OBJECTIVE,
            StoredObjective(plan.objective.metric, plan.objective.direction).to_json(),
        )
        # Last: the space marks a finished creation (hosts joining wait for it).
        study.set_user_attr(keys.SPACE, _provenance(plan.space).to_json())
        _record_run(self.store, study, plan)
        self._study = study

    # -- trials -----------------------------------------------------------------------------

    def launch(
        self, slot: str, *, search_seed: int = 0, threads: int | None = None
    ) -> tuple[optuna.Trial, TrialLaunch]:
        """A new trial (or a re-queued one), recorded as run by this scheduler on `slot` with
        its seed (`trial_seed`) and its worker's threads (what a replay needs), with its first
        heartbeat (before its owner, so that no owned trial lacks one)."""
        with warnings.catch_warnings():
            # Optuna's heartbeats work with ask/tell when the asking process records them.
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            trial = self.study.ask()
        self.heartbeat([trial.number])
        launch = TrialLaunch(
            slot, this_owner(), seed=trial_seed(search_seed, trial.number), threads=threads
        )
        trial.set_user_attr(keys.LAUNCH, launch.to_json())
        return trial, launch

    def heartbeat(self, numbers: Sequence[int]) -> None:
        """Record a heartbeat for each of these running trials of this scheduler."""
        if not self.store.heartbeats:
            return
        storage = self.store.storage
        for number in numbers:
            if number not in self._trial_ids:
                study_id = storage.get_study_id_from_name(self.study.study_name)
                self._trial_ids[number] = storage.get_trial_id_from_study_id_trial_number(
                    study_id, number
                )
            storage.record_heartbeat(self._trial_ids[number])

    def forget(self, number: int) -> None:
        """A trial of this scheduler ended: no more heartbeats for it."""
        self._trial_ids.pop(number, None)

    def standings(self) -> tuple[list[TrialRecord], set[int]]:
        """Study-wide: the complete trials (every host's), and the numbers of every ended
        trial (complete, pruned or failed), for checkpoint retention."""
        from optuna.trial import TrialState as OptunaState

        from automl.storage.store import trial_record

        ended = self.study.get_trials(
            deepcopy=False,
            states=(OptunaState.COMPLETE, OptunaState.PRUNED, OptunaState.FAIL),
        )
        complete = [trial_record(t) for t in ended if t.state == OptunaState.COMPLETE]
        return complete, {t.number for t in ended}

    def progress(self) -> tuple[int, int]:
        """Study-wide: finished trials (complete + pruned), and trials running on any host."""
        from optuna.trial import TrialState as OptunaState

        trials = self.study.get_trials(
            deepcopy=False,
            states=(OptunaState.COMPLETE, OptunaState.PRUNED, OptunaState.RUNNING),
        )
        running = sum(t.state == OptunaState.RUNNING for t in trials)
        return len(trials) - running, running

    def resume(
        self, trial: optuna.Trial, launch: TrialLaunch, point: ResumePoint, metric: str
    ) -> None:
        """Mark a retry as continuing its killed trial after `point.epoch`, and carry that
        trial's epoch reports over, so the pruner judges it on its whole curve."""
        launch = replace(launch, resumed_epoch=point.epoch)
        trial.set_user_attr(keys.LAUNCH, launch.to_json())
        for epoch, metrics in enumerate(point.history, start=1):
            value = metrics.get(metric)
            if value is not None and math.isfinite(value):
                trial.report(value, epoch)

    @staticmethod
    def retry_of(trial: optuna.Trial) -> int | None:
        """The trial this one retries, if any."""
        value = trial.user_attrs.get(keys.RETRY_OF)
        return int(value) if value is not None else None

    @staticmethod
    def suggest(trial: optuna.Trial, spec: ParamSpec) -> Value:
        """The trial's value for one parameter (raises ValueError / TypeError if impossible)."""
        return engines.suggest(trial, spec)

    def finish(self, trial: optuna.Trial, result: TrialResult, rss_mib: float) -> TrialState:
        """Record a trial's outcome, then tell Optuna how it ended."""
        from optuna.trial import TrialState as OptunaState

        outcome = TrialOutcome(
            epochs_run=result.epochs_run,
            best_epoch=result.best_epoch,
            params_count=result.params_count,
            timings=result.timings,
            failure=result.failure,
            failure_kind=result.failure_kind,
            worker_rss_mib=rss_mib,
            best_val_loss=result.best_val_loss,
        )
        trial.set_user_attr(keys.RESULT, outcome.to_json())
        if result.outcome is Outcome.COMPLETE and result.best_value is not None:
            self._tell(trial, values=result.best_value)
            return TrialState.COMPLETE
        if result.outcome is Outcome.PRUNED:
            self._tell(trial, state=OptunaState.PRUNED)
            return TrialState.PRUNED
        self._tell(trial, state=OptunaState.FAIL)
        return TrialState.FAILED

    def fail(
        self,
        trial: optuna.Trial,
        kind: FailureKind,
        reason: str,
        *,
        epochs_run: int,
        requeue: bool = True,
    ) -> bool:
        """Fail a trial this scheduler ran (its worker died, it timed out, the search stopped)
        and, with `requeue`, run its parameters again (once per trial); returns whether it
        was re-queued."""
        from optuna.trial import TrialState as OptunaState

        trial.set_user_attr(
            keys.RESULT, TrialOutcome.failed(kind, reason, epochs_run=epochs_run).to_json()
        )
        params, attrs = trial.params, trial.user_attrs
        self._tell(trial, state=OptunaState.FAIL)
        return requeue and self._requeue(trial.number, params, attrs)

    def recover_stale(self, *, exclusive: bool = False) -> list[int]:
        """Fail and re-queue the trials left RUNNING by a scheduler that is gone.

        A trial's scheduler is gone when this host can tell (`owner_alive`: same host, and its
        process, boot or start time no longer match), or when its heartbeat is older than the
        grace period (Optuna's `fail_stale_trials`; any host). Each trial is failed by exactly
        one process, so it is re-queued once whichever hosts look.

        Args:
            exclusive: this scheduler holds the study alone (SQLite, under the search lock):
                every running trial is a dead scheduler's.

        Returns:
            The numbers of the re-queued trials.
        """
        import optuna
        from optuna.trial import TrialState as OptunaState

        if self._study is None:
            return []  # a new study: nothing ran yet
        storage = self.store.storage
        study_id = storage.get_study_id_from_name(self.study.study_name)
        requeued = []
        now = datetime.datetime.now()
        unowned_grace = max(self.store.grace_period, UNOWNED_GRACE)
        for trial in self.study.get_trials(deepcopy=False, states=(OptunaState.RUNNING,)):
            launch = TrialLaunch.from_json(trial.user_attrs.get(keys.LAUNCH))
            if not exclusive:
                alive = owner_alive(launch.owner if launch else None)
                if alive or (alive is None and launch is not None):
                    continue  # alive, or on another host: its heartbeat decides
                # With no owner: its scheduler records itself right after asking for it.
                started = trial.datetime_start
                if (
                    launch is None
                    and started is not None
                    and (now - started).total_seconds() < unowned_grace
                ):
                    continue
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            outcome = TrialOutcome.failed(FailureKind.STALE, "the scheduler stopped while it ran")
            try:
                storage.set_trial_user_attr(trial_id, keys.RESULT, outcome.to_json())
                storage.set_trial_state_values(trial_id, state=OptunaState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another host failed it first (and re-queued it)
            if self._requeue(trial.number, trial.params, trial.user_attrs):
                requeued.append(trial.number)
        if self.store.heartbeats:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
            for frozen in self.store.take_stale_failed():
                if self._requeue(frozen.number, frozen.params, frozen.user_attrs):
                    requeued.append(frozen.number)
        return requeued

    def _requeue(self, number: int, params: dict[str, Any], attrs: dict[str, Any]) -> bool:
        """Run the same parameters again, once per original trial."""
        if attrs.get(keys.RETRY_OF) is not None or number in self._retried:
            return False
        self._retried.add(number)
        self.study.enqueue_trial(
            dict(params), user_attrs={keys.RETRY_OF: number}, skip_if_exists=False
        )
        return True

    def _tell(self, trial: optuna.Trial, **told: Any) -> None:
        import optuna

        try:
            self.study.tell(trial, **told)
        except RuntimeError:
            # The grid sampler calls study.stop() once every combination has been tried, which
            # Optuna allows only inside study.optimize; the trial is stored before it raises.
            if not isinstance(self.study.sampler, optuna.samplers.GridSampler):
                raise
            self.exhausted = True

    # -- the study --------------------------------------------------------------------------

    def use_sampler(self, sampler: optuna.samplers.BaseSampler) -> None:
        self.study.sampler = sampler

    def record_parameters(self, specs: Sequence[ParamSpec]) -> None:
        """Store the space's parameter table (known once a worker has run the preflight)."""
        space = SpaceProvenance.from_json(self.study.user_attrs.get(keys.SPACE))
        updated = SpaceProvenance(
            space.path, space.sha256, space.source, tuple(s.to_dict() for s in specs)
        )
        self.study.set_user_attr(keys.SPACE, updated.to_json())


def _record_run(store: StudyStore, study: optuna.Study, plan: StudyPlan) -> None:
    """Store this run's settings and add its entry to the run history (one row)."""
    if plan.role == "search":
        study.set_user_attr(keys.SETTINGS, plan.settings.to_json())
    store.add_run(
        plan.name,
        RunEntry(
            started=time.time(),
            owner=this_owner(),
            target=plan.target,
            slots=plan.slots,
            versions=versions(),
            role=plan.role,
        ),
    )


def _left_half_created(study: optuna.Study) -> bool:
    """A study of ours whose creation was cut short: no trial, and no attribute but ours, and
    not the one that marks a finished creation (the space)."""
    attrs = study.user_attrs
    return (
        keys.SPACE not in attrs
        and all(key.startswith("automl:") for key in attrs)
        and not study.get_trials(deepcopy=False)
    )


def _provenance(space: SpaceSettings) -> SpaceProvenance:
    return SpaceProvenance(str(space.path), space.sha256, space.source)


def _check_resume(study: optuna.Study, plan: StudyPlan, shown_url: str) -> None:
    attrs = study.user_attrs
    name = plan.name
    if keys.SPACE not in attrs:
        raise StoreError(
            f"study {name!r} exists in {shown_url} but was not made by automl; use --study NEW "
            "for a new study."
        )
    stored = StoredObjective.from_json(attrs.get(keys.OBJECTIVE), direction="")
    if stored.direction != plan.objective.direction or stored.metric != plan.objective.metric:
        raise StoreError(
            f"study {name!r} optimises {stored.metric} ({stored.direction}), not "
            f"{plan.objective}; drop --objective or use --study NEW."
        )
    space = SpaceProvenance.from_json(attrs.get(keys.SPACE))
    data = DataSummary.from_json(attrs.get(keys.DATA))
    changes = []
    if space.sha256 != plan.space.sha256:
        changes.append(f"the space file changed ({space.path})")
    if data.sha256 != plan.dataset.sha256:
        changes.append(f"the data changed ({data.source} → {plan.dataset.source})")
    if changes and not plan.allow_space_change:
        raise StoreError(
            f"cannot resume study {name!r}: {' and '.join(changes)} since it was made; pass "
            "--allow-space-change to continue it anyway, or --study NEW to start a new study."
        )
    if changes:
        history = [*attrs.get(keys.SPACE_HISTORY, ()), space.sha256]
        study.set_user_attr(keys.SPACE_HISTORY, history)
        study.set_user_attr(keys.SPACE, _provenance(plan.space).to_json())
        study.set_user_attr(keys.DATA, data_summary(plan.dataset).to_json())


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that decide a search's results."""
    import platform

    found = {}
    for dist in ("automl-keras", "tensorflow", "keras", "optuna", "keras-tuner", "numpy"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    found["python"] = platform.python_version()
    return found
