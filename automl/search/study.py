"""The study of one search run: opening it with what reproduces it, and every write the
scheduler makes to it.

Opening creates the study (space provenance, data summary, objective) or resumes it (refusing a
changed space, data or objective unless allowed), records the run's settings and appends a run
entry. During the run, trials are asked with their launch record, told with their typed outcome,
and failed and re-queued (once) when their worker dies, the search is interrupted, or the
scheduler that ran them is gone. Optuna's private attributes are never used.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from automl.errors import StoreError
from automl.lifetime import process_alive
from automl.search import engines
from automl.search.resume import ResumePoint
from automl.search.runner import Outcome, TrialResult
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
from automl.storage.records import TrialState
from automl.storage.store import StudyStore

if TYPE_CHECKING:
    import optuna

    from automl.data import Dataset


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
    """

    name: str
    space: SpaceSettings
    objective: Objective
    dataset: Dataset
    settings: SearchSettings
    target: int
    slots: tuple[str, ...]
    allow_space_change: bool = False


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
    """This scheduler process: host and pid, to tell a dead scheduler from a live one."""
    return Owner(socket.gethostname(), os.getpid())


def owner_is_alive(owner: Owner | None) -> bool:
    """Whether the scheduler that owns a trial still runs (only knowable on this host)."""
    if owner is None or owner.host != socket.gethostname():
        return True  # another host: its heartbeat decides
    return process_alive(owner.pid)


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
            if _left_half_created(study):
                # A kill between creating the study and storing its attributes: it holds
                # nothing (no trial, no attribute but ours), so it is made again.
                optuna.delete_study(study_name=plan.name, storage=store.storage)
            else:
                _check_resume(study, plan, store.shown_url)
                _record_run(study, plan)
                return cls(study, store, plan=plan, pruner=pruner)
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
        study = optuna.create_study(
            study_name=plan.name,
            storage=self.store.storage,
            direction=plan.objective.direction,
            pruner=pruner,
        )
        study.set_user_attr(keys.SPACE, _provenance(plan.space).to_json())
        study.set_user_attr(keys.DATA, data_summary(plan.dataset).to_json())
        study.set_user_attr(
            keys.OBJECTIVE,
            StoredObjective(plan.objective.metric, plan.objective.direction).to_json(),
        )
        _record_run(study, plan)
        self._study = study

    # -- trials -----------------------------------------------------------------------------

    def launch(self, slot: str) -> optuna.Trial:
        """A new trial (or a re-queued one), recorded as run by this scheduler on `slot`."""
        trial = self.study.ask()
        trial.set_user_attr(keys.LAUNCH, TrialLaunch(slot, this_owner()).to_json())
        return trial

    def resume(self, trial: optuna.Trial, slot: str, point: ResumePoint, metric: str) -> None:
        """Mark a retry as continuing its killed trial after `point.epoch`, and carry that
        trial's epoch reports over, so the pruner judges it on its whole curve."""
        launch = TrialLaunch(slot, this_owner(), resumed_epoch=point.epoch)
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

    def recover_stale(self, *, other_hosts: bool) -> list[int]:
        """Fail and re-queue the trials left RUNNING by a scheduler that died.

        Args:
            other_hosts: several hosts may share the study (not SQLite): leave the trials of a
                scheduler that may still run (another host, or a live process here).

        Returns:
            The numbers of the re-queued trials.
        """
        from optuna.trial import TrialState as OptunaState

        if self._study is None:
            return []  # a new study: nothing ran yet
        storage = self.store.storage
        study_id = storage.get_study_id_from_name(self.study.study_name)
        requeued = []
        for trial in self.study.get_trials(deepcopy=False, states=(OptunaState.RUNNING,)):
            launch = TrialLaunch.from_json(trial.user_attrs.get(keys.LAUNCH))
            if other_hosts and owner_is_alive(launch.owner if launch else None):
                continue
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            outcome = TrialOutcome.failed(FailureKind.STALE, "the scheduler stopped while it ran")
            storage.set_trial_user_attr(trial_id, keys.RESULT, outcome.to_json())
            storage.set_trial_state_values(trial_id, state=OptunaState.FAIL)
            if self._requeue(trial.number, trial.params, trial.user_attrs):
                requeued.append(trial.number)
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


def _record_run(study: optuna.Study, plan: StudyPlan) -> None:
    """Store this run's settings and append its entry to the run history."""
    study.set_user_attr(keys.SETTINGS, plan.settings.to_json())
    runs = [*keys.runs_from_json(study.user_attrs.get(keys.RUNS))]
    runs.append(
        RunEntry(
            started=time.time(),
            owner=this_owner(),
            target=plan.target,
            slots=plan.slots,
            versions=versions(),
        )
    )
    study.set_user_attr(keys.RUNS, keys.runs_to_json(runs))


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
