"""The scheduler's loop: one process owns the study and drives a pool of workers.

`Scheduler` asks Optuna for trials, hands them to idle workers, answers their `hp` calls,
reports each epoch to the pruner, and tells Optuna the result (`automl.search.run` prepares
everything before it starts). Faults cost one trial: a dead worker's trial fails and is retried
once, an OOM replaces the worker, NaN fails the trial, and too many consecutive failures stop
the search. Ctrl-C records every running trial and re-queues it. The loop sees the workers only
through the `Pool` protocol and the study only through `SearchStudy`; it never imports
TensorFlow, and progress goes to a `SearchObserver`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from optuna.exceptions import UpdateFinishedTrialError

from automl.errors import AutoMLError, Interrupted, SpaceError
from automl.search import engines
from automl.search.checkpoints import CheckpointKeeper
from automl.search.config import SearchConfig
from automl.search.events import (
    SearchObserver,
    TrialEvent,
)
from automl.search.messages import (
    Answer,
    AnswerError,
    Ask,
    Continue,
    EpochEnded,
    Fatal,
    Prune,
    Ready,
    TrialDone,
    TrialRequest,
    WorkerDied,
)
from automl.search.pool import Pool, WorkerHandle, describe_exit
from automl.search.resume import read_point, remove_point
from automl.search.runner import Outcome, TrialResult
from automl.search.study import SearchStudy
from automl.spaces.loader import Objective
from automl.storage.artifacts import ArtifactStore
from automl.storage.attributes import FailureKind
from automl.storage.records import TrialState

if TYPE_CHECKING:
    import optuna

    from automl.spaces.hyperparameters import ParamSpec

log = logging.getLogger(__name__)

# The default trial deadline: generous, since a first epoch also traces the model.
TRIAL_TIMEOUT_FACTOR = 10
MIN_TRIAL_TIMEOUT = 300.0


@dataclass
class _Running:
    trial: optuna.Trial
    handle: WorkerHandle
    started: float
    epoch: int = 0
    last_report: float = 0.0  # when it started, or reported its latest epoch
    retry_of: int | None = None
    parent: int | None = None  # the trial a Hyperband promotion continues
    keep_point: bool = False  # its final resume point may be continued (Hyperband)


class Scheduler:
    """The loop of one search run: trials to idle workers, messages answered, results told.

    Args:
        config: the search's settings (target, sampler, seed, failure and recycling limits).
        study: the study, and every write to it.
        pool: the workers.
        epochs: the epoch budget of each trial.
        objective: the metric and its direction.
        artifacts: the study's artifact folder (histories, checkpoints).
        checkpoints: which checkpoints to keep.
        observer: receives progress.
        finished: finished trials the study already has.
        slowest_epoch: the slowest epoch (seconds) the study has measured so far, which sets
            the default trial deadline; None before any.
        specs: the space's parameters as the resumed study recorded them for this space file;
            its workers then skip the preflight, and the first one ready starts the search.
            Defaults to `()`: the first worker's preflight records them.
        clock: monotonic seconds (injected by tests). Defaults to `time.monotonic`.
    """

    def __init__(
        self,
        config: SearchConfig,
        study: SearchStudy,
        pool: Pool,
        *,
        epochs: int,
        objective: Objective,
        artifacts: ArtifactStore,
        checkpoints: CheckpointKeeper,
        observer: SearchObserver,
        finished: int = 0,
        slowest_epoch: float | None = None,
        specs: Sequence[ParamSpec] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.study = study
        self.pool = pool
        self.epochs = epochs
        self.objective = objective
        self.artifacts = artifacts
        self.checkpoints = checkpoints
        self.observer = observer
        self.finished = finished
        self.clock = clock
        self.running: dict[int, _Running] = {}
        self.consecutive_failures = 0
        self.last_failure = ""
        self.stopped: str | None = None
        self.fatal: AutoMLError | None = None
        # Final models kept for Hyperband promotions (Keras Tuner's oracle), removed when a
        # promotion has continued them or the run ends (a next run starts new brackets).
        self.kept_points: set[int] = set()
        self.busy: dict[str, float] = {}
        self.ready_at: float | None = None
        self.sampler_ready = False
        self.slowest_epoch = slowest_epoch
        self.specs = tuple(specs)
        self._interrupted: Callable[[], int | None] = lambda: None
        self._starting: dict[int, float] = {}  # id(handle) -> when first seen starting
        self._last_beat: float | None = None
        # Other hosts may run trials of this study (PostgreSQL); a SQLite study has this
        # scheduler alone (the search lock), whose own counts are exact.
        self.shared = study.store.sqlite_path is None

    def run(self, deadline: float | None, *, interrupted: Callable[[], int | None]) -> None:
        """Run until the target is reached, the deadline passes, or the search must stop.

        Raises:
            AutoMLError: a worker cannot start, or too many consecutive failures.
            KeyboardInterrupt: after recording every running trial (failed and re-queued).
        """
        try:
            self.pool.start()
            self.busy = {handle.slot.name: 0.0 for handle in self.pool.workers}
            self._interrupted = interrupted
            while True:
                signum = interrupted()
                if signum is not None:
                    raise Interrupted(signum)
                if not self.step(deadline):
                    break
        except KeyboardInterrupt as exc:
            shown = exc.shown if isinstance(exc, Interrupted) else "Ctrl-C"
            self._end_running(FailureKind.INTERRUPTED, f"interrupted ({shown})")
            raise
        except OSError as exc:
            # Disk full, a permission, a vanished folder: what is told is kept, the running
            # trials are ended and re-queued, and the user gets one line.
            what = f"cannot write {exc.filename}" if exc.filename else "a write failed"
            reason = f"the search stopped: {what}: {exc.strerror or exc}"
            self._end_running(FailureKind.ABORTED, reason)
            raise AutoMLError(
                f"{reason}; free disk space or fix the folder's permissions, then run the same "
                "command again to resume."
            ) from exc
        finally:
            self.pool.stop()
            self._prune_checkpoints()
            for number in self.kept_points - set(self.running):
                remove_point(self.artifacts.resume_base(number))
        if self.fatal is not None:
            self._end_running(FailureKind.ABORTED, f"the search stopped: {self.stopped}")
            raise self.fatal

    def step(self, deadline: float | None, *, timeout: float = 0.5) -> bool:
        """Launch what can start, then handle the messages of up to `timeout` seconds.

        Returns:
            False once the search is over (target reached or stopping, nothing running).
        """
        stopping = self.stopped is not None or self.fatal is not None or self.study.exhausted
        if self.study.exhausted and self.stopped is None:
            self.stopped = "the grid sampler has tried every combination"
        if deadline is not None and self.clock() >= deadline and not stopping:
            self.stopped = f"--timeout {self.config.timeout:g} s reached"
            self.observer.note(
                f"Timeout reached: no new trials; {len(self.running)} running trial(s) finish."
            )
            stopping = True
        self._keep_alive()
        idle = [h for h in self.pool.workers if h.ready and h.trial is None]
        running_anywhere = len(self.running)
        if self.shared and self.study.created and (not self.running or (idle and not stopping)):
            # --trials counts the whole study: trials finished and running on every host.
            self.finished, running_anywhere = self.study.progress()
        if (self.finished >= self.config.trials or stopping) and not self.running:
            return False
        self._enforce_deadlines()
        if self.sampler_ready and not stopping:
            for handle in idle:
                if handle.trial is None and self.finished + running_anywhere < self.config.trials:
                    if not self._launch(handle):
                        break  # the engine has no trial to give now
                    running_anywhere += 1
        for handle, message in self.pool.wait(timeout=timeout):
            if isinstance(message, WorkerDied) and self._interrupted() is not None:
                # SIGTERM sent to the whole group (systemd, Slurm) kills the workers too: their
                # trials are recorded as interrupted, and no worker is started in their place.
                continue
            self.handle(handle, message)
            if self.fatal is not None and isinstance(message, Fatal):
                return False
        return True

    def _keep_alive(self) -> None:
        """Every heartbeat interval: a heartbeat for each running trial, and the trials of
        schedulers that stopped (on any host) failed and re-queued."""
        interval = self.study.store.heartbeat_interval
        if not interval or not self.study.created:
            return
        now = self.clock()
        if self._last_beat is not None and now - self._last_beat < interval:
            return
        self._last_beat = now
        self.study.heartbeat(list(self.running))
        requeued = self.study.recover_stale()
        if requeued:
            shown = ", ".join(str(n) for n in requeued)
            self.observer.note(
                f"Trial(s) {shown} of a scheduler that stopped (no heartbeat) were failed and "
                "re-queued."
            )

    def handle(self, handle: WorkerHandle, message: object) -> None:
        """Act on one message from a worker (or the pool's word that it died)."""
        match message:
            case Ready() as ready:
                self._ready(handle, ready)
            case Fatal() as fatal:
                self.fatal = fatal.error()
                self.stopped = fatal.message
            case Ask(spec=spec):
                running = self.running[handle.trial]  # type: ignore[index]
                try:
                    value = self.study.suggest(running.trial, spec)
                except (ValueError, TypeError) as exc:
                    handle.send(AnswerError(f"'{spec.name}': {exc}"))
                else:
                    handle.send(Answer(value))
            case EpochEnded(epoch=epoch, metrics=metrics):
                self._epoch(handle, epoch, metrics)
            case TrialDone(result=result, rss_mib=rss):
                self._done(handle, result, rss)
            case WorkerDied(exitcode=code):
                self._died(handle, code)
            case _:
                raise TypeError(f"unexpected message from worker {handle.slot.name}: {message!r}")

    def _ready(self, handle: WorkerHandle, ready: Ready) -> None:
        handle.ready, handle.ready_info = True, ready
        if self.ready_at is None:
            self.ready_at = self.clock()
        if self.sampler_ready:
            return
        # The space built in a worker (its preflight): only now may a new study be created.
        self.study.create()
        specs = ready.specs or self.specs
        if specs:
            self.study.use_sampler(
                engines.make_sampler(
                    self.config.sampler,
                    seed=self.config.seed,
                    slots=len(self.pool.workers),
                    specs=specs,
                    objective=self.objective,
                    epochs=self.epochs,
                )
            )
            if ready.specs:
                self.study.record_parameters(ready.specs)
            self.sampler_ready = True
        elif handle is self.pool.workers[0]:
            self.study.use_sampler(
                engines.make_sampler(
                    self.config.sampler,
                    seed=self.config.seed,
                    slots=len(self.pool.workers),
                    objective=self.objective,
                )
            )
            self.sampler_ready = True

    def _launch(self, handle: WorkerHandle) -> bool:
        """Start a trial on `handle`; False when the engine has none to give now (Keras
        Tuner's Hyperband waiting for a round to finish)."""
        sampler = self.study.study.sampler if self.study.created else None
        plan = None
        if getattr(sampler, "plans_launches", False):
            plan = sampler.plan_launch()  # type: ignore[union-attr]
            if plan is None:
                return False
        trial, launch = self.study.launch(
            handle.slot.name, search_seed=self.config.seed, threads=handle.slot.threads
        )
        assert launch.seed is not None  # (launch records it; only older records lack one)
        if plan is not None:
            sampler.launched(trial.number)  # type: ignore[union-attr]
        number = trial.number
        retry_of = self.study.retry_of(trial)
        point = None
        if retry_of is not None:  # a killed trial: continue after its saved epoch, if any
            point = read_point(self.artifacts.resume_base(retry_of))
        elif plan is not None and plan.parent is not None:
            # A Hyperband promotion continues the model its parent ended with; its best epoch
            # (and checkpoint) is among its own epochs: the parent keeps its own.
            point = read_point(self.artifacts.resume_base(plan.parent))
            if point is not None:
                point = replace(point, best_epoch=None, best_value=None, best_checkpoint=None)
        if point is not None:
            self.study.resume(trial, launch, point, self.objective.metric)
        request = TrialRequest(
            number=number,
            seed=launch.seed,
            epochs=plan.epochs if plan is not None else self.epochs,
            checkpoint=str(self.artifacts.checkpoint_path(number)),
            checkpoint_threshold=self.checkpoints.threshold(),
            resume=str(self.artifacts.resume_base(number)),
            resume_from=point,
            keep_final=plan is not None,
        )
        handle.trial = number
        now = self.clock()
        self.running[number] = _Running(
            trial,
            handle,
            now,
            epoch=point.epoch if point else 0,
            last_report=now,
            retry_of=retry_of,
            parent=plan.parent if plan is not None else None,
            keep_point=plan is not None,
        )
        handle.send(request)
        self.observer.trial_started(number, handle.slot.name)
        return True

    def _epoch(self, handle: WorkerHandle, epoch: int, metrics: Mapping[str, float]) -> None:
        running = self.running[handle.trial]  # type: ignore[index]
        running.epoch = epoch
        now = self.clock()
        took = now - running.last_report
        self.slowest_epoch = took if self.slowest_epoch is None else max(self.slowest_epoch, took)
        running.last_report = now
        value = metrics.get(self.objective.metric)
        prune = False
        if value is not None and math.isfinite(value):
            try:
                running.trial.report(value, epoch)
                # At the last epoch the trial has had its whole budget: it completes.
                prune = epoch < self.epochs and running.trial.should_prune()
            except UpdateFinishedTrialError:
                prune = True  # failed by another host meanwhile: stop; its retry runs
        handle.send(Prune() if prune else Continue())
        self.observer.trial_epoch(running.trial.number, handle.slot.name, epoch, value)

    def _done(self, handle: WorkerHandle, result: TrialResult, rss: float) -> None:
        number = handle.trial
        assert number is not None
        running = self.running.pop(number)
        handle.trial = None
        handle.trials_run += 1
        handle.last_rss = rss
        if handle.first_rss is None:
            handle.first_rss = rss
        seconds = self.clock() - running.started
        self.busy[handle.slot.name] = self.busy.get(handle.slot.name, 0.0) + seconds
        result = judged(result)
        self.study.forget(number)
        # The store first: a file write that fails below must not lose the result.
        try:
            state = self.study.finish(running.trial, result, rss)
        except UpdateFinishedTrialError:
            # Its heartbeat was missed for the grace period (this scheduler stalled) and
            # another host failed and re-queued it: the retry stands, this result is dropped.
            self.observer.note(
                f"Trial {number} was failed by another host meanwhile (no heartbeat); its "
                "re-queued retry replaces it."
            )
            self._recycle_if_needed(handle, False, rss)
            return
        if state.finished:
            self.finished += 1
        if state is TrialState.COMPLETE and result.best_value is not None:
            self.checkpoints.note_complete(
                number,
                result.best_value,
                result.epochs_run,
                result.params_count,
                tiebreak=result.best_val_loss,
            )
        if result.outcome is Outcome.FAILED:
            self._failed(result.failure or "unknown")
            if result.failure_kind is FailureKind.FATAL:
                self.fatal = SpaceError(result.failure or "the space is wrong")
                self.stopped = result.failure
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
            self._prune_checkpoints()
        self._forget_resume_points(running)
        if result.history:
            self.artifacts.write_json(
                self.artifacts.history_path(number), result.history, durable=False
            )
        self._recycle_if_needed(handle, result.failure_kind is FailureKind.OOM, rss)

    def _prune_checkpoints(self) -> None:
        """Keep the checkpoints of the study-wide best K (every host's complete trials) and of
        running trials; delete only those of trials the study has ended."""
        if not self.study.created:
            return
        try:
            complete, ended = self.study.standings()
        except Exception as exc:  # the store is unreachable: deleting nothing is safe
            log.warning("checkpoints not pruned: cannot read the study (%s)", exc)
            return
        self.checkpoints.note_trials(complete)
        self.checkpoints.prune(self.running, ended=ended)

    def _recycle_if_needed(self, handle: WorkerHandle, oom: bool, rss: float) -> None:
        grown = (rss - (handle.first_rss or rss)) > self.config.recycle_memory_mib
        if oom:
            why = "out of memory"
        elif grown:
            why = f"resident memory grew to {rss:.0f} MiB"
        elif handle.trials_run >= self.config.recycle_after:
            why = f"{handle.trials_run} trials run"
        else:
            return
        self.observer.note(f"Replacing worker {handle.slot.name} ({why}).")
        self.pool.replace(handle)

    def _died(self, handle: WorkerHandle, code: int | None) -> None:
        reason = f"worker {handle.slot.name} died ({describe_exit(code)})"
        if handle.trial is not None:
            # Not the trial's fault (a kill, the OOM killer): it runs again, and only a retry
            # that dies too counts toward --max-failures.
            retried = self._end_trial(handle, FailureKind.DIED, reason, requeue=True)
            if not retried:
                self._failed(reason)
        elif not handle.ready:
            self._failed(f"{reason} while starting")
            if self.fatal is not None:
                return
        self.observer.note(f"{reason}; starting a new worker.")
        self.pool.replace(handle)

    def _end_trial(
        self, handle: WorkerHandle, kind: FailureKind, reason: str, *, requeue: bool
    ) -> bool:
        """Fail the trial `handle` runs (the scheduler's decision, not the worker's result);
        returns whether it was re-queued."""
        number = handle.trial
        assert number is not None
        running = self.running.pop(number)
        handle.trial = None
        seconds = self.clock() - running.started
        self.busy[handle.slot.name] = self.busy.get(handle.slot.name, 0.0) + seconds
        params = dict(running.trial.params)
        self.study.forget(number)
        try:
            retried = self.study.fail(
                running.trial, kind, reason, epochs_run=running.epoch, requeue=requeue
            )
        except UpdateFinishedTrialError:
            retried = False  # another host failed (and re-queued) it already
        if not retried:  # nothing will continue it
            self._forget_resume_points(running)
        self.observer.trial_finished(
            TrialEvent(
                number,
                handle.slot.name,
                TrialState.FAILED,
                None,
                running.epoch,
                None,
                seconds,
                reason + ("; re-queued" if retried else ""),
                params,
            )
        )
        return retried

    # -- deadlines ------------------------------------------------------------------------------

    def _trial_limit(self) -> tuple[float, str] | None:
        """How long a trial may run, and why; None while nothing tells (no epoch measured)."""
        if self.config.trial_timeout is not None:
            return self.config.trial_timeout, "--trial-timeout"
        if self.slowest_epoch is None:
            return None
        limit = max(MIN_TRIAL_TIMEOUT, TRIAL_TIMEOUT_FACTOR * self.slowest_epoch * self.epochs)
        return limit, (
            f"{TRIAL_TIMEOUT_FACTOR} x its slowest epoch x {self.epochs} epochs, at least "
            f"{MIN_TRIAL_TIMEOUT:.0f} s; set --trial-timeout to change it"
        )

    def _enforce_deadlines(self) -> None:
        """A hung trial (stuck input pipeline, device) fails as timed out, and a worker that
        does not start in time counts as a failed start; both workers are replaced."""
        now = self.clock()
        limit = self._trial_limit()
        for handle in list(self.pool.workers):
            if handle.trial is not None:
                running = self.running[handle.trial]
                if limit is not None and now - running.started > limit[0]:
                    reason = f"timed out after {limit[0]:.0f} s ({limit[1]})"
                    self._end_trial(handle, FailureKind.TIMEOUT, reason, requeue=False)
                    self._failed(reason)
                    self.observer.note(f"Replacing worker {handle.slot.name} ({reason}).")
                    self.pool.replace(handle)
            elif not handle.ready:
                since = self._starting.setdefault(id(handle), now)
                if now - since > self.config.worker_start_timeout:
                    reason = (
                        f"worker {handle.slot.name} did not start within "
                        f"{self.config.worker_start_timeout:.0f} s"
                    )
                    self._failed(reason)
                    if self.fatal is None:
                        self.observer.note(f"{reason}; starting a new worker.")
                        self.pool.replace(handle)

    def _forget_resume_points(self, running: _Running) -> None:
        """A trial that ended for good needs its resume point no more, nor the one of the
        killed trial (or the Hyperband parent) it continued. Under Keras Tuner's Hyperband a
        trial's own final point stays until a promotion continues it."""
        own = None if running.keep_point else running.trial.number
        if running.keep_point:
            self.kept_points.add(running.trial.number)
        for number in (own, running.retry_of, running.parent):
            if number is not None:
                self.kept_points.discard(number)
                remove_point(self.artifacts.resume_base(number))

    def _failed(self, reason: str) -> None:
        """Count a failed trial; too many in a row stop the search."""
        self.consecutive_failures += 1
        self.last_failure = reason
        if self.consecutive_failures >= self.config.max_failures:
            self.stopped = f"{self.consecutive_failures} consecutive trials failed (last: {reason})"
            self.fatal = AutoMLError(
                f"search stopped: {self.stopped}; fix the space or data (try automl trial), or "
                "raise --max-failures."
            )

    def _end_running(self, kind: FailureKind, reason: str) -> None:
        """Fail and re-queue every running trial (the search is stopping); best effort, so a
        store that fails too still lets the others be recorded."""
        for running in list(self.running.values()):
            try:
                self.study.fail(running.trial, kind, reason, epochs_run=running.epoch)
            except Exception:
                log.warning("could not record trial %d as %s", running.trial.number, kind.value)
        self.running.clear()


def judged(result: TrialResult) -> TrialResult:
    """The result as the study records it: a 'complete' trial that reported no epoch failed
    (e.g. a space's own `fit` that drops the callbacks it is given)."""
    if result.outcome is Outcome.COMPLETE and result.best_value is None:
        return replace(
            result, outcome=Outcome.FAILED, failure=NO_EPOCH, failure_kind=FailureKind.ERROR
        )
    return result


NO_EPOCH = (
    "the trial reported no epoch: fit() trained none, or a space's fit() did not pass the "
    "callbacks it was given on to model.fit"
)


__all__ = ["Scheduler"]
