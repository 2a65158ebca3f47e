"""The scheduler's loop against a fake pool: every message in every state, and a worker dying at
every point of the protocol, without processes or sleeps.

The fake workers play the worker's side of `automl.search.messages` exactly (Ready, then per
trial Ask → Answer, EpochEnded → Continue/Prune, TrialDone); the study is a real Optuna study
in a real SQLite store. The real-process fault tests are in test_search.py.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytest

from automl.errors import AutoMLError, SpaceError
from automl.search.checkpoints import CheckpointKeeper
from automl.search.config import SearchConfig
from automl.search.events import NullObserver, TrialEvent
from automl.search.messages import (
    Answer,
    AnswerError,
    Ask,
    Continue,
    EpochEnded,
    Fatal,
    FatalKind,
    FromWorker,
    Prune,
    Ready,
    Stop,
    ToWorker,
    TrialDone,
    TrialRequest,
    WorkerDied,
)
from automl.search.pool import WorkerHandle
from automl.search.resume import ResumePoint, ResumeWriter, read_point
from automl.search.runner import Outcome, TrialResult
from automl.search.scheduler import Scheduler
from automl.search.study import SearchStudy
from automl.search.worker import Slot
from automl.spaces.hyperparameters import Kind, ParamSpec
from automl.spaces.loader import Objective
from automl.storage import attributes as keys
from automl.storage.artifacts import ArtifactStore
from automl.storage.attributes import FailureKind, TrialOutcome
from automl.storage.records import TrialState
from automl.storage.store import StudyStore

X = ParamSpec(name="x", kind=Kind.FLOAT, low=0.0, high=1.0, default=0.5, location="space.py:3")
EPOCHS = 3


class FakeLink:
    def __init__(self) -> None:
        self.sent: list[ToWorker] = []
        self.read = 0
        self.closed = False

    def send(self, obj: Any) -> None:
        self.sent.append(obj)

    def close(self) -> None:
        self.closed = True

    def unread(self) -> list[ToWorker]:
        new, self.read = self.sent[self.read :], len(self.sent)
        return new


@dataclass
class FakeWorker:
    """One worker's side of the protocol: one parameter `x`, each epoch scoring `x * epoch`.

    `die_at` names the point where it dies instead of answering: `start` (before Ready),
    `request` (on TrialRequest), `answer` (on Answer), `epoch` (on the first Continue), `epoch2`
    (on the Continue after epoch 2), `next` (on the TrialRequest after its first trial). Each
    epoch from the second saves the previous one's resume point, as a worker does.
    """

    handle: WorkerHandle
    preflight: bool
    die_at: str | None = None
    hang_at: str | None = None  # `start` (never Ready) or `answer` (silent mid-trial)
    result: Callable[[int, float], TrialResult] | None = None
    dead: bool = False
    trials: int = 0
    number: int = -1
    x: float = 0.0
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    resume: Path | None = None

    def start(self) -> FromWorker | None:
        if self.hang_at == "start":
            return None
        if self.die_at == "start":
            return self._die()
        return Ready(1000, self.handle.slot.name, {}, (X,) if self.preflight else ())

    def respond(self, message: ToWorker) -> FromWorker | None:
        if self.dead:
            return None
        match message:
            case TrialRequest(number=number, resume=resume, resume_from=point):
                if self.die_at == "request" or (self.die_at == "next" and self.trials >= 1):
                    return self._die()
                self.number, self.epoch, self.history = number, 0, []
                self.resume = Path(resume) if resume else None
                if point is not None:  # continue the killed trial after its saved epoch
                    self.epoch, self.history = point.epoch, [dict(h) for h in point.history]
                return Ask(X)
            case Answer(value=value):
                if self.die_at == "answer":
                    return self._die()
                if self.hang_at == "answer":
                    return None
                self.x = float(value)  # type: ignore[arg-type]
                return self._next_epoch()
            case AnswerError(reason=reason):
                return self._done(Outcome.FAILED, failure=reason, kind=FailureKind.BUILD)
            case Continue():
                if self.die_at == "epoch" or (self.die_at == "epoch2" and self.epoch == 2):
                    return self._die()
                if self.epoch >= EPOCHS:
                    return self._done(Outcome.COMPLETE)
                return self._next_epoch()
            case Prune():
                return self._done(Outcome.PRUNED)
            case Stop():
                return None
        raise AssertionError(f"unexpected message {message!r}")

    def _next_epoch(self) -> EpochEnded:
        self.epoch += 1
        metrics = {"score": self.x * self.epoch}
        self.history.append(metrics)
        if self.resume is not None and self.epoch > 1:  # as a worker saves its resume point
            point = ResumePoint(self.epoch - 1, tuple(self.history[:-1]))
            ResumeWriter(self.resume, EPOCHS).save(None, point)
        return EpochEnded(self.epoch, metrics)

    def _done(
        self, outcome: Outcome, *, failure: str | None = None, kind: FailureKind | None = None
    ) -> TrialDone:
        self.trials += 1
        if self.result is not None:
            return TrialDone(self.result(self.number, self.x), 100.0)
        scores = [h["score"] for h in self.history]
        best = max(scores) if scores else None
        return TrialDone(
            TrialResult(
                outcome,
                {"x": self.x},
                list(self.history),
                best_epoch=scores.index(best) + 1 if best is not None else None,
                best_value=best,
                params_count=10,
                failure=failure,
                failure_kind=kind,
            ),
            100.0,
        )

    def _die(self) -> WorkerDied:
        self.dead = True
        return WorkerDied(-9)


class FakePool:
    """A pool whose workers answer at once, in process; `plan` sets how each new worker acts."""

    def __init__(self, slots: int, plan: Callable[[int], dict[str, Any]] | None = None) -> None:
        self.slots = [Slot(f"cpu{i}") for i in range(slots)]
        self.plan = plan or (lambda index: {})
        self.workers: list[WorkerHandle] = []
        self.fakes: dict[int, FakeWorker] = {}
        self.spawned = 0
        self.pending: list[tuple[WorkerHandle, FromWorker]] = []
        self.replaced: list[str] = []
        self.stopped = False

    def _spawn(self, slot: Slot, preflight: bool) -> WorkerHandle:
        handle = WorkerHandle(slot=slot, link=FakeLink())
        fake = FakeWorker(handle, preflight, **self.plan(self.spawned))
        self.spawned += 1
        self.fakes[id(handle)] = fake
        started = fake.start()
        if started is not None:
            self.pending.append((handle, started))
        return handle

    def start(self) -> None:
        self.workers = [self._spawn(s, preflight=i == 0) for i, s in enumerate(self.slots)]

    def wait(self, timeout: float) -> list[tuple[WorkerHandle, FromWorker]]:
        out, self.pending = self.pending, []
        for handle in self.workers:
            fake = self.fakes[id(handle)]
            for message in handle.link.unread():  # type: ignore[attr-defined]
                reply = fake.respond(message)
                if reply is not None:
                    out.append((handle, reply))
        return out

    def replace(self, handle: WorkerHandle) -> WorkerHandle:
        self.replaced.append(handle.slot.name)
        fresh = self._spawn(handle.slot, preflight=False)
        self.workers[self.workers.index(handle)] = fresh
        return fresh

    def stop(self) -> None:
        self.stopped = True


class Events(NullObserver):
    def __init__(self) -> None:
        self.finished: list[TrialEvent] = []
        self.notes: list[str] = []

    def trial_finished(self, event: TrialEvent) -> None:
        self.finished.append(event)

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass
class Setup:
    study: optuna.Study
    pool: FakePool
    events: Events
    scheduler: Scheduler

    def trials(self, *states: optuna.trial.TrialState) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def outcome(self, number: int) -> TrialOutcome:
        outcome = TrialOutcome.from_json(self.study.trials[number].user_attrs.get(keys.RESULT))
        assert outcome is not None
        return outcome


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Setup]:
    def build(
        *,
        slots: int = 1,
        plan: Callable[[int], dict[str, Any]] | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
        clock: Callable[[], float] | None = None,
        **settings: Any,
    ) -> Setup:
        store = StudyStore(f"sqlite:///{tmp_path / 'automl.db'}", create=True)
        study = optuna.create_study(
            study_name="loop",
            storage=store.storage,
            direction="maximize",
            pruner=pruner or optuna.pruners.NopPruner(),
        )
        artifacts = ArtifactStore(tmp_path / "loop")
        config = SearchConfig(**{"space": "space.py", "trials": 4, "sampler": "random", **settings})
        pool = FakePool(slots, plan)
        events = Events()
        scheduler = Scheduler(
            config,
            SearchStudy(study, store),
            pool,
            epochs=EPOCHS,
            objective=Objective("score", "maximize"),
            artifacts=artifacts,
            checkpoints=CheckpointKeeper(artifacts, direction="maximize", keep=2),
            observer=events,
            **({"clock": clock} if clock else {}),
        )
        return Setup(study, pool, events, scheduler)

    return build


def never() -> int | None:
    return None


State = optuna.trial.TrialState


def test_trials_run_to_the_target_with_every_message_answered(make: Callable[..., Setup]) -> None:
    setup = make(slots=2, trials=5)
    setup.scheduler.run(None, interrupted=never)
    assert len(setup.trials(State.COMPLETE)) == 5 and len(setup.study.trials) == 5
    assert setup.pool.stopped and not setup.scheduler.running
    worker = setup.pool.workers[0]
    sent = [type(m).__name__ for m in worker.link.sent]  # type: ignore[attr-defined]
    assert sent[:5] == ["TrialRequest", "Answer", "Continue", "Continue", "Continue"]
    for trial in setup.study.trials:
        outcome = setup.outcome(trial.number)
        assert outcome.epochs_run == EPOCHS and outcome.best_epoch == EPOCHS
        assert trial.value == pytest.approx(trial.params["x"] * EPOCHS)
        assert trial.user_attrs[keys.LAUNCH]["slot"] in ("cpu0", "cpu1")
    assert setup.scheduler.sampler_ready


def test_preflight_specs_are_stored(make: Callable[..., Setup]) -> None:
    setup = make()
    setup.study.set_user_attr(keys.SPACE, {"path": "space.py", "sha256": "ab", "source": ""})
    setup.scheduler.run(None, interrupted=never)
    stored = keys.SpaceProvenance.from_json(setup.study.user_attrs[keys.SPACE])
    assert [p["name"] for p in stored.parameters] == ["x"] and stored.sha256 == "ab"


def test_pruner_verdicts_reach_the_worker_but_never_at_the_last_epoch(
    make: Callable[..., Setup],
) -> None:
    # A threshold pruner that prunes everything below 10: every epoch is below it.
    setup = make(pruner=optuna.pruners.ThresholdPruner(lower=10.0), trials=2)
    setup.scheduler.run(None, interrupted=never)
    sent = setup.pool.workers[0].link.sent  # type: ignore[attr-defined]
    assert [type(m) for m in sent[:3]] == [TrialRequest, Answer, Prune]
    assert len(setup.trials(State.PRUNED)) == 2
    assert all(setup.outcome(t.number).epochs_run == 1 for t in setup.study.trials)


class PruneAtTheLastEpoch(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.last_step == EPOCHS


def test_a_trial_that_reached_its_budget_completes_whatever_the_pruner_says(
    make: Callable[..., Setup],
) -> None:
    setup = make(pruner=PruneAtTheLastEpoch(), trials=2)
    setup.scheduler.run(None, interrupted=never)
    assert len(setup.trials(State.COMPLETE)) == 2
    assert not any(isinstance(m, Prune) for m in setup.pool.workers[0].link.sent)  # type: ignore[attr-defined]


def test_a_nan_value_is_never_reported_to_the_pruner(make: Callable[..., Setup]) -> None:
    setup = make(pruner=optuna.pruners.ThresholdPruner(lower=10.0), trials=1)
    setup.scheduler.pool.start()
    handle = setup.pool.workers[0]
    setup.scheduler.handle(handle, Ready(1, "cpu0", {}, (X,)))
    setup.scheduler.step(None)  # launches trial 0
    setup.scheduler.handle(handle, Ask(X))
    setup.scheduler.handle(handle, EpochEnded(1, {"score": math.nan}))
    assert isinstance(handle.link.sent[-1], Continue)  # type: ignore[attr-defined]
    assert setup.study.trials[0].intermediate_values == {}


def test_a_parameter_that_cannot_be_sampled_gets_an_answer_error(
    make: Callable[..., Setup],
) -> None:
    setup = make(trials=1, max_failures=1)
    setup.scheduler.pool.start()
    handle = setup.pool.workers[0]
    setup.scheduler.handle(handle, Ready(1, "cpu0", {}, (X,)))
    setup.scheduler.step(None)
    setup.scheduler.handle(handle, Ask(X))
    as_int = ParamSpec(name="x", kind=Kind.INT, low=0, high=5, default=1)
    setup.scheduler.handle(handle, Ask(as_int))
    reply = handle.link.sent[-1]  # type: ignore[attr-defined]
    assert isinstance(reply, AnswerError) and reply.reason.startswith("'x': ")


@pytest.mark.parametrize(
    ("kind", "error"),
    [(FatalKind.SPACE, SpaceError), (FatalKind.STARTUP, AutoMLError)],
)
def test_a_fatal_worker_error_stops_the_search_with_its_own_kind(
    make: Callable[..., Setup], kind: FatalKind, error: type[AutoMLError]
) -> None:
    setup = make()
    setup.pool.plan = lambda index: {}
    setup.pool.start = lambda: None  # type: ignore[method-assign]
    handle = WorkerHandle(slot=Slot("cpu0"), link=FakeLink())
    setup.pool.workers = [handle]
    setup.pool.fakes[id(handle)] = FakeWorker(handle, True)
    setup.pool.pending = [(handle, Fatal(kind, "it broke"))]
    with pytest.raises(error, match="it broke") as caught:
        setup.scheduler.run(None, interrupted=never)
    assert type(caught.value) is error  # a STARTUP failure is not a SpaceError
    assert setup.pool.stopped and setup.study.trials == []


def test_fatal_from_an_exception_keeps_its_kind() -> None:
    assert Fatal.from_exception(SpaceError("space.py:3: bad"), "cpu0").kind is FatalKind.SPACE
    startup = Fatal.from_exception(ImportError("no module named tensorflow"), "cpu0")
    assert startup.kind is FatalKind.STARTUP
    assert type(startup.error()) is AutoMLError
    assert startup.message == (
        "worker cpu0 could not start: ImportError: no module named tensorflow"
    )


@pytest.mark.parametrize("point", ["request", "answer", "epoch"])
def test_a_worker_dying_mid_trial_fails_it_requeues_it_once_and_is_replaced(
    make: Callable[..., Setup], point: str
) -> None:
    # The first worker dies at `point` of its first trial; its replacement works.
    setup = make(trials=3, plan=lambda index: {"die_at": point} if index == 0 else {})
    setup.scheduler.run(None, interrupted=never)
    failed = setup.trials(State.FAIL)
    assert [t.number for t in failed] == [0]
    outcome = setup.outcome(0)
    assert outcome.failure_kind is FailureKind.DIED
    assert outcome.failure == "worker cpu0 died (signal 9 (SIGKILL))"
    assert outcome.epochs_run == (1 if point == "epoch" else 0)
    retry = setup.study.trials[1]
    assert retry.user_attrs[keys.RETRY_OF] == 0
    if point != "request":  # a trial that never asked has no parameters to re-queue
        assert retry.params == failed[0].params
    assert len(setup.trials(State.COMPLETE)) == 3
    assert setup.pool.replaced == ["cpu0"]
    assert setup.events.finished[0].failure == "worker cpu0 died (signal 9 (SIGKILL)); re-queued"
    assert any("starting a new worker" in note for note in setup.events.notes)


def test_a_retried_trial_that_dies_again_is_not_requeued_twice(
    make: Callable[..., Setup],
) -> None:
    setup = make(
        trials=2, max_failures=5, plan=lambda index: {"die_at": "answer"} if index < 2 else {}
    )
    setup.scheduler.run(None, interrupted=never)
    retries = [t for t in setup.study.trials if t.user_attrs.get(keys.RETRY_OF) is not None]
    assert [t.user_attrs[keys.RETRY_OF] for t in retries] == [0]
    assert [t.number for t in setup.trials(State.FAIL)] == [0, 1]


def test_a_worker_dying_after_its_result_loses_nothing(make: Callable[..., Setup]) -> None:
    # Dies on the request after its first trial: trial 0 is complete, trial 1 never started.
    setup = make(trials=2, plan=lambda index: {"die_at": "next"} if index == 0 else {})
    setup.scheduler.run(None, interrupted=never)
    assert setup.study.trials[0].state is State.COMPLETE
    assert setup.outcome(1).failure_kind is FailureKind.DIED
    assert len(setup.trials(State.COMPLETE)) == 2


def test_workers_dying_while_starting_stop_the_search_after_max_failures(
    make: Callable[..., Setup],
) -> None:
    setup = make(max_failures=3, plan=lambda index: {"die_at": "start"})
    with pytest.raises(AutoMLError, match=r"3 consecutive trials failed \(last: worker cpu0 died"):
        setup.scheduler.run(None, interrupted=never)
    assert setup.pool.replaced == ["cpu0", "cpu0"]  # the third death stops, no fourth worker
    assert setup.study.trials == []


def test_consecutive_failed_trials_stop_the_search(make: Callable[..., Setup]) -> None:
    def failing(number: int, x: float) -> TrialResult:
        return TrialResult(Outcome.FAILED, {"x": x}, failure="boom", failure_kind=FailureKind.ERROR)

    setup = make(trials=10, max_failures=3, plan=lambda index: {"result": failing})
    with pytest.raises(AutoMLError, match=r"3 consecutive trials failed \(last: boom\)"):
        setup.scheduler.run(None, interrupted=never)
    assert len(setup.trials(State.FAIL)) == 3 and not setup.trials(State.RUNNING)


def test_a_fatal_trial_failure_stops_with_a_space_error(make: Callable[..., Setup]) -> None:
    def fatal(number: int, x: float) -> TrialResult:
        return TrialResult(
            Outcome.FAILED, {"x": x}, failure="objective missing", failure_kind=FailureKind.FATAL
        )

    setup = make(trials=5, plan=lambda index: {"result": fatal})
    with pytest.raises(SpaceError, match="objective missing"):
        setup.scheduler.run(None, interrupted=never)
    assert len(setup.study.trials) == 1


def test_out_of_memory_and_recycling_replace_the_worker(make: Callable[..., Setup]) -> None:
    def oom(number: int, x: float) -> TrialResult:
        if number == 0:
            return TrialResult(
                Outcome.FAILED, {"x": x}, failure="oom", failure_kind=FailureKind.OOM
            )
        return TrialResult(Outcome.COMPLETE, {"x": x}, [{"score": x}], 1, x)

    setup = make(trials=3, recycle_after=2, plan=lambda index: {"result": oom})
    setup.scheduler.run(None, interrupted=never)
    assert setup.pool.replaced == ["cpu0", "cpu0"]
    assert any("(out of memory)" in n for n in setup.events.notes)
    assert any("(2 trials run)" in n for n in setup.events.notes)


def test_ctrl_c_fails_and_requeues_the_running_trials(make: Callable[..., Setup]) -> None:
    setup = make(slots=2, trials=4)
    steps = iter(range(100))
    with pytest.raises(KeyboardInterrupt):
        setup.scheduler.run(None, interrupted=lambda: signal.SIGINT if next(steps) == 3 else None)
    interrupted = [t for t in setup.trials(State.FAIL)]
    assert interrupted and all(
        setup.outcome(t.number).failure_kind is FailureKind.INTERRUPTED for t in interrupted
    )
    assert not setup.trials(State.RUNNING)
    assert len(setup.trials(State.WAITING)) == len(interrupted)
    assert setup.pool.stopped


def test_the_deadline_stops_new_trials_and_lets_running_ones_finish(
    make: Callable[..., Setup],
) -> None:
    now = [0.0]
    setup = make(trials=10, timeout=5.0, clock=lambda: now[0])
    setup.scheduler.pool.start()
    assert setup.scheduler.step(5.0)  # Ready: the sampler is set up
    assert setup.scheduler.step(5.0)  # trial 0 launched
    now[0] = 6.0
    while setup.scheduler.step(5.0):
        pass
    assert setup.scheduler.stopped == "--timeout 5 s reached"
    assert any(n.startswith("Timeout reached: no new trials") for n in setup.events.notes)
    assert [t.state for t in setup.study.trials] == [State.COMPLETE]


def test_an_unknown_message_is_a_bug_not_ignored(make: Callable[..., Setup]) -> None:
    setup = make()
    setup.scheduler.pool.start()
    with pytest.raises(TypeError, match="unexpected message from worker cpu0"):
        setup.scheduler.handle(setup.pool.workers[0], ("ready", None))


def test_a_finished_trial_is_told_before_its_event(make: Callable[..., Setup]) -> None:
    setup = make(trials=1)
    seen: list[TrialState] = []

    def record(event: TrialEvent) -> None:
        seen.append(event.state)
        assert setup.study.trials[event.number].state is State.COMPLETE

    setup.events.trial_finished = record  # type: ignore[method-assign]
    setup.scheduler.run(None, interrupted=never)
    assert seen == [TrialState.COMPLETE]


# -- issue 16: nothing lost ----------------------------------------------------------------------


def test_a_failed_history_write_loses_no_result_and_leaves_nothing_running(
    make: Callable[..., Setup], tmp_path: Path
) -> None:
    # Disk full or a permission error while a finished trial's files are written: its result is
    # already in the store, the other running trial is failed and re-queued, one clear error.
    setup = make(slots=2, trials=4)
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "histories").write_text("not a folder")  # every history write fails
    with pytest.raises(AutoMLError, match=r"^the search stopped: cannot write .*histories") as e:
        setup.scheduler.run(None, interrupted=never)
    assert e.value.exit_code == 1 and "\n" not in str(e.value)
    assert len(setup.trials(State.COMPLETE)) == 1  # told to the store before the file
    assert not setup.trials(State.RUNNING)
    stopped = setup.trials(State.FAIL)
    assert len(stopped) == 1 and setup.outcome(stopped[0].number).failure_kind is (
        FailureKind.ABORTED
    )
    assert len(setup.trials(State.WAITING)) == 1  # re-queued for the next run
    assert setup.pool.stopped


def test_a_trial_that_reports_no_epoch_is_a_counted_failure(make: Callable[..., Setup]) -> None:
    # E.g. a Keras-Tuner-style fit() that drops `callbacks`: no epoch ever reaches us.
    def no_epochs(number: int, x: float) -> TrialResult:
        return TrialResult(Outcome.COMPLETE, {"x": x}, [], None, None, 10)

    setup = make(trials=10, max_failures=3, plan=lambda index: {"result": no_epochs})
    with pytest.raises(AutoMLError, match=r"3 consecutive trials failed \(last: .*no epoch"):
        setup.scheduler.run(None, interrupted=never)
    assert len(setup.trials(State.FAIL)) == 3
    assert "no epoch" in (setup.outcome(0).failure or "")


def ticking() -> Callable[[], float]:
    """A clock that advances one second each time it is read."""
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    return clock


def test_a_hung_trial_times_out_and_its_worker_is_replaced(make: Callable[..., Setup]) -> None:
    setup = make(
        trials=2,
        trial_timeout=60.0,
        clock=ticking(),
        plan=lambda index: {"hang_at": "answer"} if index == 0 else {},
    )
    setup.scheduler.run(None, interrupted=never)
    outcome = setup.outcome(0)
    assert outcome.failure_kind is FailureKind.TIMEOUT
    assert outcome.failure == "timed out after 60 s (--trial-timeout)"
    assert setup.pool.replaced == ["cpu0"]
    assert len(setup.trials(State.COMPLETE)) == 2  # the search went on
    # A hang may be the configuration's: it is not retried.
    assert all(t.user_attrs.get(keys.RETRY_OF) is None for t in setup.study.trials)


def test_the_default_trial_deadline_follows_the_slowest_epoch_but_never_under_5_minutes(
    make: Callable[..., Setup],
) -> None:
    # Worker 1 hangs in its first trial; worker 0's epochs set the deadline meanwhile.
    setup = make(
        slots=2,
        trials=3,
        clock=ticking(),
        plan=lambda index: {"hang_at": "answer"} if index == 1 else {},
    )
    setup.scheduler.run(None, interrupted=never)
    timed_out = [t for t in setup.study.trials if t.state is State.FAIL]
    assert len(timed_out) == 1
    assert setup.outcome(timed_out[0].number).failure == (
        "timed out after 300 s (10 x its slowest epoch x 3 epochs, at least 300 s; set "
        "--trial-timeout to change it)"
    )


def test_a_worker_that_never_starts_is_replaced_then_stops_the_search(
    make: Callable[..., Setup],
) -> None:
    setup = make(
        max_failures=2,
        worker_start_timeout=30.0,
        clock=ticking(),
        plan=lambda index: {"hang_at": "start"},
    )
    with pytest.raises(AutoMLError, match=r"did not start within 30 s"):
        setup.scheduler.run(None, interrupted=never)
    assert setup.pool.replaced == ["cpu0"]


@pytest.mark.parametrize(("deaths", "stops"), [(1, False), (2, True)])
def test_a_killed_worker_does_not_count_toward_max_failures(
    make: Callable[..., Setup], deaths: int, stops: bool
) -> None:
    # Worker deaths are not the trial's fault: with --max-failures 1 one death (the trial runs
    # again) does not stop the search; only a retry that dies again counts.
    setup = make(
        trials=2, max_failures=1, plan=lambda index: {"die_at": "epoch"} if index < deaths else {}
    )
    if stops:
        with pytest.raises(AutoMLError, match="1 consecutive trials failed"):
            setup.scheduler.run(None, interrupted=never)
    else:
        setup.scheduler.run(None, interrupted=never)
        assert len(setup.trials(State.COMPLETE)) == 2


def test_a_killed_trial_continues_mid_way_with_its_reports_carried_over(
    make: Callable[..., Setup], tmp_path: Path
) -> None:
    # Worker 0 dies after reporting epoch 2 (its resume point: epoch 1); the retry continues
    # after epoch 1 instead of epoch 0, and the pruner sees the whole curve.
    setup = make(trials=1, plan=lambda index: {"die_at": "epoch2"} if index == 0 else {})
    setup.scheduler.run(None, interrupted=never)
    killed, retry = setup.study.trials
    assert killed.state is State.FAIL and retry.state is State.COMPLETE
    assert retry.user_attrs[keys.RETRY_OF] == 0
    assert retry.user_attrs[keys.LAUNCH]["resumed_epoch"] == 1
    assert sorted(retry.intermediate_values) == [1, 2, 3]  # epoch 1 carried over
    assert retry.params == killed.params
    sent = setup.pool.workers[0].link.sent  # type: ignore[attr-defined]
    request = next(m for m in sent if isinstance(m, TrialRequest))
    assert request.resume_from is not None and request.resume_from.epoch == 1
    # Both trials ended for good: their resume points are gone.
    assert not list((tmp_path / "loop" / "resume").glob("*"))
    assert read_point(tmp_path / "loop" / "resume" / "trial-0") is None
