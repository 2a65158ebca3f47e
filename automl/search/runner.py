"""Running one trial: build the model for given parameter answers, train it, report each epoch.

The runner trains through `TrialTraining` (seeded, the space's training plan followed, the
same path as retraining) with early stopping and NaN termination, calls a per-epoch hook (the
scheduler's pruning decision comes back through it), keeps a best-epoch checkpoint (the full
model with its optimizer state, written atomically), and always clears the Keras session.
It never raises for a failed trial: the failure is in the result, with its reason.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from automl.data.dataset import Dataset
from automl.errors import SpaceError, one_line
from automl.search.resume import ResumePoint, ResumeWriter
from automl.search.training import TrialTraining, fit_in_step, is_number
from automl.spaces.hyperparameters import Answers, HyperParameters, Value
from automl.spaces.loader import Objective, Space
from automl.spaces.plan import TrainingPlan
from automl.storage.attributes import FailureKind
from automl.storage.records import TIEBREAK_METRIC

log = logging.getLogger(__name__)

EpochHook = Callable[[int, Mapping[str, float]], bool]
"""Called after each epoch with (1-based epoch, metrics); returns False to stop (prune)."""

# No early stopping unless asked for (`--patience P`): the pruner already stops poor trials,
# and on validation accuracy (steps of one image) a patience of 5 mostly stopped the slow
# climbers that would have won (issue 22's pruning analysis, benchmarks/README.md).
DEFAULT_PATIENCE: int | None = None


class Outcome(str, Enum):
    """How a trial ended."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"


def tiebreak_at(history: Sequence[Mapping[str, float]], epoch: int | None) -> float | None:
    """The tie-breaking metric (validation loss) at a 1-based epoch of a history, if recorded."""
    if epoch is None or not 0 < epoch <= len(history):
        return None
    return history[epoch - 1].get(TIEBREAK_METRIC)


@dataclass(frozen=True)
class TrialResult:
    """What one trial produced.

    Attributes:
        outcome: complete, pruned or failed.
        params: the values of the active parameters.
        history: one dict of metrics per epoch run.
        best_epoch: 1-based epoch with the best objective value, or None.
        best_value: that value, or None.
        params_count: the model's parameter count (0 if it was never built).
        timings: seconds spent building, training and in total, and per epoch.
        failure: the reason, for a failed trial.
        failure_kind: the class of failure, for a failed trial.
        checkpoint: the best-epoch checkpoint written, if any.
    """

    outcome: Outcome
    params: dict[str, Value]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    params_count: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    failure: str | None = None
    failure_kind: FailureKind | None = None
    checkpoint: Path | None = None

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def best_val_loss(self) -> float | None:
        """The validation loss at the best epoch (what breaks ties in the objective)."""
        return tiebreak_at(self.history, self.best_epoch)


def run_trial(
    space: Space,
    dataset: Dataset,
    answers: Answers,
    *,
    epochs: int,
    seed: int = 0,
    objective: Objective | None = None,
    on_epoch: EpochHook | None = None,
    checkpoint: Path | None = None,
    checkpoint_threshold: float | None = None,
    patience: int | None = DEFAULT_PATIENCE,
    verbose: int = 0,
    resume: Path | None = None,
    resume_from: ResumePoint | None = None,
    jit: bool = False,
    tensorboard: Path | None = None,
    repeats: int = 1,
    keep_final_point: bool = False,
) -> TrialResult:
    """Build and train one configuration.

    Args:
        space: the loaded space file.
        dataset: the prepared data (trained on `train`, measured on `val`).
        answers: where parameter values come from (a fixed replay, an Optuna trial, …).
        epochs: the epoch budget (maximum resource).
        seed: seeds Python, NumPy and TensorFlow. Defaults to `0`.
        objective: the metric to optimise. Defaults to the space's objective.
        on_epoch: per-epoch hook; returning False stops the trial as pruned.
        checkpoint: where to keep the best-epoch model (`.keras`); None for none.
        checkpoint_threshold: write the checkpoint only once the best value reaches this (a tie
            may still rank first, on cost).
            Defaults to `None` (always).
        patience: epochs without improvement before early stopping; None for none.
            Defaults to `DEFAULT_PATIENCE` (none).
        verbose: Keras `fit` verbosity. Defaults to `0`.
        resume: where to keep the trial's resume point (`.../resume/trial-N`), so that a retry
            can continue mid-way if this worker is killed; None for none. Defaults to `None`.
        resume_from: the resume point of the killed trial this one retries: training continues
            after its epoch, from its saved model. Defaults to `None` (from epoch 0).
        jit: compile the training step with XLA. Defaults to `False` (the space's choice).
        tensorboard: the trial's TensorBoard folder (`DIR/trial-N`): per-epoch scalars, and
            its parameters for the HParams dashboard. Defaults to `None` (none).
        repeats: models trained with different seeds, epoch by epoch together; the objective
            is their mean, and pruning and early stopping follow the mean curve (Keras Tuner's
            `executions_per_trial`). The checkpoint is the first model's. A retry does not
            resume mid-way. Defaults to `1`.
        keep_final_point: save a resume point after the last epoch too (Keras Tuner's
            Hyperband continues a promoted trial from it). Defaults to `False`.
    """
    from automl.tfruntime import import_tensorflow

    tf = import_tensorflow()
    import keras

    objective = objective or space.objective
    started = time.perf_counter()
    training = TrialTraining(
        space, dataset, HyperParameters(answers), dataset.train, dataset.val, epochs, seed, jit
    )
    hp = training.hp
    tracker = EpochTracker(
        objective,
        on_epoch,
        checkpoint,
        checkpoint_threshold,
        resume=(
            ResumeWriter(resume, epochs, keep_final=keep_final_point)
            if resume is not None and repeats == 1
            else None
        ),
    )
    plan = None
    initial_epoch = 0
    try:
        try:
            plan = training.build()
        except SpaceError as exc:
            if isinstance(exc.__cause__, (tf.errors.ResourceExhaustedError, MemoryError)):
                # A model too large for the device: out of memory (the worker is replaced),
                # not a bad configuration.
                reason = f"out of memory while building: {one_line(exc.__cause__, 200)}"
                return failed_result(hp, FailureKind.OOM, reason, started, exc)
            return failed_result(hp, FailureKind.BUILD, str(exc), started, exc)
        tracker.params_count = int(plan.model.count_params())
        if resume_from is not None:
            plan, initial_epoch = _resumed(plan, resume_from, tracker)
        build_seconds = time.perf_counter() - started
        callbacks: list[Any] = [tracker.callback(), keras.callbacks.TerminateOnNaN()]
        if patience:
            callbacks.append(tracker.early_stopping(patience))
        if tensorboard is not None:
            callbacks.append(_tensorboard(tensorboard, hp.values))
        if repeats > 1:
            with _mean_scalars(tensorboard) as scalars:
                _fit_repeats(training, plan, tracker, repeats, patience, verbose, scalars)
        else:
            training.fit(
                plan,
                callbacks=callbacks,
                stopped=lambda: tracker.stopped,
                verbose=verbose,
                initial_epoch=initial_epoch,
            )
    except tf.errors.ResourceExhaustedError as exc:
        return failed_result(
            hp, FailureKind.OOM, f"out of memory: {one_line(exc, 200)}", started, exc, tracker
        )
    except ObjectiveMissing as exc:
        return failed_result(hp, FailureKind.FATAL, str(exc), started, exc, tracker)
    except MemoryError as exc:
        return failed_result(hp, FailureKind.OOM, "host out of memory", started, exc, tracker)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {one_line(exc, 300)}"
        return failed_result(hp, FailureKind.ERROR, reason, started, exc, tracker)
    finally:
        del plan
        keras.backend.clear_session()
        gc.collect()
    total = time.perf_counter() - started
    timings = {
        "build": build_seconds,
        "train": total - build_seconds,
        "total": total,
        **tracker.epoch_timings(),
    }
    return tracker.result(hp.values, timings)


# Seeds of a trial's repeats: seed + k * REPEAT_SEED_STRIDE (far from the next trials' seeds).
REPEAT_SEED_STRIDE = 100_003


def _fit_repeats(
    training: TrialTraining,
    plan: TrainingPlan,
    tracker: EpochTracker,
    repeats: int,
    patience: int | None,
    verbose: int,
    scalars: Callable[[int, dict[str, float]], None] | None = None,
) -> None:
    """Train `repeats` models of the configuration together; the tracker (and `scalars`, the
    TensorBoard writer) sees their mean."""
    others = [
        replace(training, seed=training.seed + k * REPEAT_SEED_STRIDE) for k in range(1, repeats)
    ]
    runs = [(training, plan), *((other, other.build()) for other in others)]

    def on_epoch(epoch: int, logs: dict[str, float]) -> bool:
        if scalars is not None:
            scalars(epoch, logs)
        if not tracker.end_epoch(plan.model, epoch, logs):
            return False
        if patience and tracker.best_epoch is not None and epoch - tracker.best_epoch >= patience:
            tracker.stopped = True
            return False
        return True

    fit_in_step(runs, on_epoch, on_epoch_begin=tracker.begin_epoch, verbose=verbose)


def _tensorboard(folder: Path, values: dict[str, Any]) -> Any:
    """Keras's TensorBoard callback for `folder`, after writing the trial's parameters there
    as an HParams session (so `tensorboard --logdir DIR` lists every trial in HParams)."""
    import keras
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    folder.mkdir(parents=True, exist_ok=True)
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        hparams_api.hparams(
            {k: v for k, v in values.items() if isinstance(v, (bool, int, float, str))},
            trial_id=folder.name,
        )
    writer.close()
    return keras.callbacks.TensorBoard(log_dir=str(folder))


@contextlib.contextmanager
def _mean_scalars(
    folder: Path | None,
) -> Iterator[Callable[[int, dict[str, float]], None] | None]:
    """Writes a trial's mean curve over its repeats as Keras's TensorBoard callback writes one
    model's (`train/` and `validation/` runs, `epoch_<metric>` tags), so trials with and without
    repeats overlay in TensorBoard; the writers are closed when the trial ends, as Keras closes
    its own (a worker runs many trials). None without a folder."""
    if folder is None:
        yield None
        return
    import tensorflow as tf

    writers = {
        run: tf.summary.create_file_writer(str(folder / run)) for run in ("train", "validation")
    }

    def write(epoch: int, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            run, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with writers[run].as_default():
                tf.summary.scalar(f"epoch_{name}", value, step=epoch - 1)
        for writer in writers.values():
            writer.flush()

    try:
        yield write
    finally:
        for writer in writers.values():
            writer.close()


def _resumed(
    plan: TrainingPlan, point: ResumePoint, tracker: EpochTracker
) -> tuple[TrainingPlan, int]:
    """The plan with the saved model (weights and optimizer state after `point.epoch`) and the
    epoch to continue from; the plan and epoch 0 when the saved model cannot be loaded."""
    import keras

    if point.model is None:
        return plan, 0
    try:
        model = keras.saving.load_model(point.model, safe_mode=True)
    except Exception as exc:
        log.warning("cannot resume from %s (%s); training from epoch 0", point.model, exc)
        return plan, 0
    tracker.restore(point)
    fine_tune = plan.fine_tune
    if fine_tune is not None:
        # The base to unfreeze later is the saved model's own copy of it.
        fine_tune = replace(fine_tune, base=model.get_layer(fine_tune.base.name))
    return replace(plan, model=model, fine_tune=fine_tune), point.epoch


class ObjectiveMissing(SpaceError):
    """The objective metric is not reported: every trial would fail the same way (the trial
    fails as FATAL and the search stops)."""


class EpochTracker:
    """Per-epoch bookkeeping of one trial: history, best epoch, NaN, pruning, checkpoints.

    The Keras callbacks of the runner use it, and so does any executor that produces epochs
    another way (the function executor of scheduler benchmarks).
    """

    def __init__(
        self,
        objective: Objective,
        hook: EpochHook | None,
        checkpoint: Path | None,
        threshold: float | None = None,
        *,
        resume: ResumeWriter | None = None,
    ):
        self.objective = objective
        self.resume = resume
        self.hook = hook
        self.checkpoint = checkpoint
        self.threshold = threshold
        self.history: list[dict[str, float]] = []
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self.pruned = False
        self.stopped = False
        self.nan_epoch: int | None = None
        self.params_count = 0
        self.written: Path | None = None
        self._epoch_started = 0.0
        self._epoch_seconds: list[float] = []

    def restore(self, point: ResumePoint) -> None:
        """Continue a killed trial's record: its epochs, its best epoch and checkpoint."""
        self.history = [dict(h) for h in point.history]
        self.best_epoch, self.best_value = point.best_epoch, point.best_value
        old = Path(point.best_checkpoint) if point.best_checkpoint else None
        if old is not None and self.checkpoint is not None and old.is_file():
            os.replace(old, self.checkpoint)  # the retry's number now names the best epoch
            self.written = self.checkpoint

    def epoch_timings(self) -> dict[str, float]:
        if not self._epoch_seconds:
            return {}
        return {
            "first_epoch": self._epoch_seconds[0],
            "epoch_median": sorted(self._epoch_seconds)[len(self._epoch_seconds) // 2],
        }

    def callback(self) -> Any:
        import keras

        tracker = self

        class _Report(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                tracker.begin_epoch()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                tracker.end_epoch(self.model, epoch + 1, dict(logs or {}))

        return _Report()

    def early_stopping(self, patience: int) -> Any:
        import keras

        tracker = self

        class _EarlyStop(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                if tracker.best_epoch is not None and epoch + 1 - tracker.best_epoch >= patience:
                    tracker.stopped = True
                    self.model.stop_training = True

        return _EarlyStop()

    def begin_epoch(self) -> None:
        self._epoch_started = time.perf_counter()

    def end_epoch(self, model: Any, epoch: int, logs: Mapping[str, Any]) -> bool:
        """Record one epoch; returns False when training must stop (NaN or pruned)."""
        self._epoch_seconds.append(time.perf_counter() - self._epoch_started)
        metrics = {k: float(v) for k, v in logs.items() if is_number(v)}
        metrics.pop("learning_rate", None)
        self.history.append(metrics)
        metric = self.objective.metric
        if metric not in metrics:
            raise ObjectiveMissing(
                f"the objective '{metric}' is not among the metrics Keras reports "
                f"({', '.join(sorted(metrics)) or 'none'}); add it to compile(metrics=...) or "
                "set OBJECTIVE (or --objective) to one of them."
            )
        value = metrics[metric]
        loss = metrics.get("loss", 0.0)
        if not math.isfinite(loss) or not math.isfinite(value):
            self.nan_epoch = epoch
            self._stop(model)
            return False
        if self._improves(value, metrics):
            self.best_value, self.best_epoch = value, epoch
            if (
                self.checkpoint is not None
                and model is not None
                and (self.threshold is None or not self.objective.better(self.threshold, value))
            ):
                save_model_atomically(model, self.checkpoint)
                self.written = self.checkpoint
        if self.hook is not None and not self.hook(epoch, metrics):
            self.pruned = True
            self._stop(model)
            return False
        if self.resume is not None and self.resume.due(epoch):
            self._save_resume_point(model, epoch)
        return True

    def _improves(self, value: float, metrics: Mapping[str, float]) -> bool:
        """Whether this epoch is the trial's new best: a better objective, or the same with a
        lower validation loss (accuracy on a few hundred images ties often)."""
        if self.best_value is None or self.objective.better(value, self.best_value):
            return True
        if value != self.best_value or self.objective.metric == TIEBREAK_METRIC:
            return False
        loss = metrics.get(TIEBREAK_METRIC)
        best = tiebreak_at(self.history, self.best_epoch)
        return loss is not None and best is not None and loss < best

    def _save_resume_point(self, model: Any, epoch: int) -> None:
        assert self.resume is not None
        written = str(self.written) if self.written else None
        point = ResumePoint(
            epoch, tuple(self.history), self.best_epoch, self.best_value, None, written
        )
        try:
            self.resume.save(model, point)
        except OSError as exc:  # a retry would start at epoch 0: not worth failing the trial
            log.warning("cannot save the resume point (%s); going on without", exc)
            self.resume = None

    def _stop(self, model: Any) -> None:
        self.stopped = True
        if model is not None:
            model.stop_training = True

    def result(self, params: dict[str, Value], timings: dict[str, float]) -> TrialResult:
        """The trial's result from what was recorded."""
        nan = self.nan_epoch is not None
        outcome = Outcome.FAILED if nan else Outcome.PRUNED if self.pruned else Outcome.COMPLETE
        return TrialResult(
            outcome,
            params,
            self.history,
            self.best_epoch,
            self.best_value,
            self.params_count,
            timings,
            failure=f"loss became NaN at epoch {self.nan_epoch}" if nan else None,
            failure_kind=FailureKind.NAN if nan else None,
            checkpoint=self.written,
        )


def save_model_atomically(model: Any, path: Path) -> None:
    """Save a full `.keras` model (with optimizer state): temp file, fsync, rename, fsync the
    folder."""
    from automl.storage.atomic import atomic_path

    with atomic_path(path) as temporary:
        model.save(temporary)


def failed_result(
    hp: HyperParameters,
    kind: FailureKind,
    reason: str,
    started: float,
    exc: BaseException,
    tracker: EpochTracker | None = None,
) -> TrialResult:
    log.debug("trial failed (%s): %s", kind.value, reason, exc_info=exc)
    return TrialResult(
        Outcome.FAILED,
        hp.values,
        history=tracker.history if tracker else [],
        best_epoch=tracker.best_epoch if tracker else None,
        best_value=tracker.best_value if tracker else None,
        params_count=tracker.params_count if tracker else 0,
        timings={"total": time.perf_counter() - started},
        failure=reason,
        failure_kind=kind,
        checkpoint=tracker.written if tracker else None,
    )
