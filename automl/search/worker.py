"""Worker processes: pinned to a device slot before TensorFlow is imported, they run many trials.

A worker never opens the store. It receives a `TrialRequest`, runs `build(hp)` with every `hp`
call answered by the scheduler (`RemoteAnswers`), streams each epoch's metrics and waits for
`Continue` or `Prune`, and sends the result. It exits by itself when the scheduler disappears.
The messages are the frozen dataclasses of `automl.search.messages`.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import json
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from automl.errors import SpaceError, one_line, shown_path
from automl.lifetime import exit_with_parent as _exit_with_parent
from automl.search.messages import (
    Answer,
    AnswerError,
    Ask,
    EpochEnded,
    Fatal,
    Prune,
    Ready,
    Stop,
    TrialDone,
    TrialRequest,
)
from automl.search.resume import ResumeWriter
from automl.search.runner import EpochHook, TrialResult
from automl.spaces.hyperparameters import Answers, ParamSpec, Value
from automl.spaces.loader import Objective, source_sha256


@dataclass(frozen=True)
class Slot:
    """A device slot: where one worker runs.

    Attributes:
        name: `cpu0`, `gpu1`, or `gpu1.2` for the third trial packed on GPU 1.
        env: environment set before TensorFlow is imported (`CUDA_VISIBLE_DEVICES`, threads).
        threads: TensorFlow intra-op threads, or None for TensorFlow's default.
    """

    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    threads: int | None = None


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker of a search loads once.

    Attributes:
        space_path: the space file.
        dataset_path: the prepared dataset (`.npz`) the scheduler wrote.
        objective: the metric to optimise and its direction.
        executor: `"keras"`, `"function"` (plain-Python spaces, no TensorFlow), or
            `"module:factory"` for a custom executor.
        preflight: record the whole space and build the default model before the first trial.
        patience: early-stopping patience, or None.
        log_dir: where each worker's stdout and stderr go (`<slot>.log`), or None to inherit.
        space_sha256: the study's hash of the space file: a worker started after the file was
            edited (a replacement after a death, OOM or recycling) refuses to run it. None for
            no check.
        precision: `--precision` (`auto`, `float32`, `mixed`), set before any model is built.
        jit: compile every model's training step with XLA.
        tensorboard: the folder of TensorBoard logs (a `trial-N` folder per trial), or None.
        repeats: models trained per trial with different seeds, their mean the objective.
        deterministic: TensorFlow op determinism, with the slot's thread count fixed.
    """

    space_path: str
    dataset_path: str
    objective: Objective
    executor: str = "keras"
    preflight: bool = False
    patience: int | None = None
    log_dir: str | None = None
    space_sha256: str | None = None
    precision: str = "auto"
    jit: bool = False
    tensorboard: str | None = None
    repeats: int = 1
    deterministic: bool = False


class Executor(Protocol):
    """Runs trials inside a worker (Keras by default; benchmarks plug in trivial ones)."""

    def preflight(self) -> list[ParamSpec]: ...

    def run(self, request: TrialRequest, answers: Answers, on_epoch: EpochHook) -> TrialResult: ...


class KerasExecutor:
    """Trains Keras models with the trial runner; TensorFlow is imported here, once."""

    def __init__(self, setup: WorkerSetup, slot: Slot) -> None:
        from automl.data import load_saved_dataset
        from automl.spaces import load_space
        from automl.tfruntime import import_tensorflow, set_precision

        import_tensorflow(threads=slot.threads, deterministic=setup.deterministic)
        set_precision(setup.precision)
        self.jit = setup.jit
        self.space = load_space(setup.space_path)
        self.dataset = load_saved_dataset(setup.dataset_path)
        self.objective = setup.objective
        self.patience = setup.patience
        self.tensorboard = Path(setup.tensorboard) if setup.tensorboard else None
        self.repeats = setup.repeats

    def preflight(self) -> list[ParamSpec]:
        import keras

        from automl.spaces import HyperParameters, SpaceInfo, explore_space

        info = SpaceInfo(
            self.dataset.input_shape,
            self.dataset.num_classes,
            self.dataset.class_names,
            len(self.dataset.train),
            1,
        )

        def run(hp: HyperParameters) -> None:
            keras.backend.clear_session()
            self.space.build(hp, info)

        specs = list(explore_space(run).specs)
        keras.backend.clear_session()
        return specs

    def run(self, request: TrialRequest, answers: Answers, on_epoch: EpochHook) -> TrialResult:
        from automl.search.runner import run_trial

        return run_trial(
            self.space,
            self.dataset,
            answers,
            epochs=request.epochs,
            seed=request.seed,
            objective=self.objective,
            on_epoch=on_epoch,
            checkpoint=Path(request.checkpoint) if request.checkpoint else None,
            checkpoint_threshold=request.checkpoint_threshold,
            patience=self.patience,
            resume=Path(request.resume) if request.resume else None,
            resume_from=request.resume_from,
            jit=self.jit,
            tensorboard=(
                self.tensorboard / f"trial-{request.number}" if self.tensorboard else None
            ),
            repeats=self.repeats,
            keep_final_point=request.keep_final,
        )


class FunctionExecutor:
    """Runs plain-Python spaces with no TensorFlow: `build(hp)` returns an iterable of
    per-epoch objective values (a generator may sleep to stand in for training).

    It drives the same scheduler, pool, pruning and store as Keras trials, so scheduler
    benchmarks (B1) and fault tests measure our orchestration and nothing else.
    """

    def __init__(self, setup: WorkerSetup, slot: Slot) -> None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("automl_function_space", setup.space_path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.build = module.build
        self.takes_start_epoch = "start_epoch" in inspect.signature(module.build).parameters
        self.path = Path(setup.space_path)
        self.objective = setup.objective

    def preflight(self) -> list[ParamSpec]:
        from automl.spaces import explore_space

        # The space can tell a recording run from a trial (e.g. to log trials only).
        os.environ["AUTOML_PREFLIGHT"] = "1"
        try:
            return list(explore_space(lambda hp: next(iter(self.build(hp)), None)).specs)
        except SpaceError:
            raise
        except Exception as exc:  # as the Keras executor's loader reports a failing build()
            raise SpaceError(
                f"{shown_path(self.path)}: build() raised {type(exc).__name__}: {one_line(exc)}"
            ) from exc
        finally:
            del os.environ["AUTOML_PREFLIGHT"]

    def run(self, request: TrialRequest, answers: Answers, on_epoch: EpochHook) -> TrialResult:
        from automl.search.runner import EpochTracker, failed_result
        from automl.spaces import HyperParameters
        from automl.storage.attributes import FailureKind

        started = time.perf_counter()
        hp = HyperParameters(answers)
        resume = None
        if request.resume:  # no model to save: the state alone, a few bytes
            resume = ResumeWriter(
                Path(request.resume), request.epochs, first_cost=0.0, keep_final=request.keep_final
            )
        tracker = EpochTracker(
            self.objective,
            on_epoch,
            Path(request.checkpoint) if request.checkpoint else None,
            request.checkpoint_threshold,
            resume=resume,
        )
        model = _ValueCheckpoint()
        first = 0
        if request.resume_from is not None:  # continue a killed trial after its saved epoch
            tracker.restore(request.resume_from)
            first = request.resume_from.epoch
        try:
            tracker.begin_epoch()
            # A space may skip the epochs a resumed trial has done (`start_epoch`).
            values = self.build(hp, start_epoch=first) if self.takes_start_epoch else self.build(hp)
            for epoch, value in enumerate(
                values, start=1 if not self.takes_start_epoch else first + 1
            ):
                if epoch <= first:
                    continue
                if epoch > request.epochs:
                    break
                model.value = value
                if not tracker.end_epoch(model, epoch, {self.objective.metric: value}):
                    break
                tracker.begin_epoch()
        except SpaceError as exc:
            return failed_result(hp, FailureKind.BUILD, str(exc), started, exc, tracker)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {one_line(exc)}"
            return failed_result(hp, FailureKind.ERROR, reason, started, exc, tracker)
        return tracker.result(hp.values, {"total": time.perf_counter() - started})


class _ValueCheckpoint:
    """What a function trial checkpoints at its best epoch (the value, a few bytes), so that
    checkpoint retention runs in scheduler tests exactly as with Keras models."""

    def __init__(self) -> None:
        self.value: float | None = None
        self.stop_training = False

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps({"value": self.value}), encoding="utf-8")


class RemoteAnswers:
    """Answers `hp` calls by asking the scheduler's Optuna trial over the pipe."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def answer(self, spec: ParamSpec) -> Value:
        self._conn.send(Ask(spec))
        match self._conn.recv():
            case Answer(value=value):
                return value
            case AnswerError(reason=reason):
                raise SpaceError(f"{spec.location}: {reason}")
            case other:
                raise RuntimeError(f"the scheduler answered {other!r} to a parameter request")


def worker_main(
    conn: Any,
    slot: Slot,
    setup: WorkerSetup,
    parent_pid: int,
    env: Mapping[str, str] | None = None,
) -> None:
    """Entry point of a worker process, spawned or forked from the pool's server.

    Args:
        conn: the pipe to the scheduler.
        slot: where this worker runs (its environment is applied first).
        setup: what to load.
        parent_pid: the scheduler's process id; the worker ends when the scheduler does.
        env: the scheduler's environment when it started this worker (a forked worker has the
            server's otherwise). Defaults to `None`: the inherited one.
    """
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    os.environ.update(slot.env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scheduler's to handle
    if setup.log_dir:
        _redirect_output(Path(setup.log_dir) / f"{slot.name}.log")
    _exit_with_parent(_watched_parent(parent_pid))
    started = time.perf_counter()
    try:
        _check_space_unchanged(setup)
        executor = _make_executor(setup, slot)
        specs = tuple(executor.preflight()) if setup.preflight else ()
    except Exception as exc:
        conn.send(Fatal.from_exception(exc, slot.name))
        return
    shown_env = {k: os.environ.get(k, "") for k in sorted(slot.env)}
    conn.send(Ready(os.getpid(), slot.name, shown_env, specs, time.perf_counter() - started))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        match message:
            case Stop():
                return
            case TrialRequest() as request:
                result = executor.run(request, RemoteAnswers(conn), _epoch_hook(conn))
                conn.send(TrialDone(result, resident_mib()))
                if not gc.get_freeze_count():
                    # TensorFlow and Keras leave ~400,000 long-lived objects that every full
                    # collection walks again (~0.2 s, twice a trial: Keras's clear_session
                    # collects too). After the first trial has loaded what trials use, move them
                    # out of the collector's sight; each trial's own models are still collected.
                    gc.collect()
                    gc.freeze()


def _watched_parent(scheduler_pid: int) -> int:
    """The process whose death must end this worker: the scheduler, or the forkserver that the
    scheduler started and that forked this worker (it ends when the scheduler does)."""
    parent = os.getppid()
    if parent != scheduler_pid:
        try:
            stat = Path(f"/proc/{parent}/stat").read_text(encoding="ascii", errors="replace")
            if int(stat.rpartition(")")[2].split()[1]) == scheduler_pid:
                return parent
        except (OSError, ValueError, IndexError):
            pass
    return scheduler_pid


def _epoch_hook(conn: Any) -> EpochHook:
    """Report each epoch and wait for the scheduler's verdict: False means pruned."""

    def on_epoch(epoch: int, metrics: Mapping[str, float]) -> bool:
        conn.send(EpochEnded(epoch, dict(metrics)))
        return not isinstance(conn.recv(), Prune)

    return on_epoch


def _redirect_output(path: Path) -> None:
    """Send this process's stdout and stderr (Python and C++) to a log file: Keras and
    TensorFlow messages must not break the scheduler's display. The log is size-capped and
    rotated (`automl.search.worker_logs`): a long search must not fill the disk with it."""
    from automl.search.worker_logs import redirect_output

    redirect_output(path)
    print(f"--- worker {os.getpid()} started {time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)


def _check_space_unchanged(setup: WorkerSetup) -> None:
    """Refuse a space file edited since the search started: its trials would not be the study's
    (and a broken edit would fail them one by one)."""
    if setup.space_sha256 is None:
        return
    path = Path(setup.space_path)
    try:
        digest = source_sha256(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{shown_path(path)}: cannot read the space file: {exc}.") from exc
    if digest != setup.space_sha256:
        raise SpaceError(
            f"{shown_path(path)} changed during the search; the search stops so that no trial "
            "runs the edited file (running trials are re-queued). Restore the file and run the "
            "same command to resume, or pass --allow-space-change to go on with the new one."
        )


def _make_executor(setup: WorkerSetup, slot: Slot) -> Executor:
    if setup.executor == "keras":
        return KerasExecutor(setup, slot)
    if setup.executor == "function":
        return FunctionExecutor(setup, slot)
    module_name, _, factory = setup.executor.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, factory)(setup, slot)


def resident_mib() -> float:
    """This process's resident memory in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
