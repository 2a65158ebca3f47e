"""Training one configuration of a space the way a trial does; retraining uses the same path.

`TrialTraining` seeds Python, NumPy and TensorFlow, runs the space's `build` with the data's
`SpaceInfo`, then fits the `TrainingPlan`: the input pipeline at the `batch_size`
hyperparameter, several steps per `tf.function` call, the plan's callbacks, its fine-tuning
phase (recompiled at a lower learning rate) and the space's own `fit` when it has one. A trial
trains on `train` and measures `val` after each epoch, with its callbacks and pruning;
retraining trains on train + val, with no validation, for a fixed number of epochs.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from automl.data.dataset import Dataset, Split
from automl.search.seeds import global_seed
from automl.spaces.hyperparameters import HyperParameters
from automl.spaces.loader import Space, SpaceInfo, takes_arrays
from automl.spaces.plan import FineTune, TrainingPlan

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32
MAX_STEPS_PER_EXECUTION = 64
# Validation batches need no gradients: larger ones run faster, up to a size in bytes (256
# digits are 64 KB; 256 photos at 192×256 would be 151 MB of float32 per batch in flight).
MIN_VAL_BATCH_SIZE = 256
VAL_BATCH_BYTES = 32 * 1024 * 1024


def validation_batch_size(batch_size: int, input_shape: tuple[int | None, ...]) -> int:
    """Images per validation batch: up to `MIN_VAL_BATCH_SIZE`, as long as a float32 batch
    stays within `VAL_BATCH_BYTES`; never fewer than the training batch."""
    pixels = math.prod(n or 1 for n in input_shape)
    return max(batch_size, min(MIN_VAL_BATCH_SIZE, VAL_BATCH_BYTES // (4 * pixels)))


@dataclass(frozen=True)
class TrialTraining:
    """One configuration of a space, trained as a trial trains it.

    Attributes:
        space: the loaded space file.
        dataset: the data; its shape and classes reach `build` through `SpaceInfo`.
        hp: the configuration (its `batch_size` sets the pipeline's batch).
        train: the split to train on (`dataset.train`), or several joined without a copy
            (train and val when retraining).
        val: the split measured after each epoch, or None for none.
        epochs: the epoch budget, shared by the plan's phases.
        seed: seeds Python, NumPy and TensorFlow before `build`, and the shuffling.
            Defaults to `0`.
        jit: compile the training step with XLA (`--jit`). Defaults to `False`: the space's
            own `compile` decides.
    """

    space: Space
    dataset: Dataset
    hp: HyperParameters
    train: Split | tuple[Split, ...]
    val: Split | None
    epochs: int
    seed: int = 0
    jit: bool = False

    @property
    def train_size(self) -> int:
        parts = self.train if isinstance(self.train, tuple) else (self.train,)
        return sum(len(part) for part in parts)

    def build(self) -> TrainingPlan:
        """Seed, then run the space's `build` with the data's `SpaceInfo`.

        Raises:
            SpaceError: `build` failed or returned something the space contract refuses.
        """
        import keras

        keras.utils.set_random_seed(global_seed(self.seed))
        info = SpaceInfo(
            self.dataset.input_shape,
            self.dataset.num_classes,
            self.dataset.class_names,
            train_size=self.train_size,
            epochs=self.epochs,
        )
        return self.space.build_plan(self.hp, info)

    def fit(
        self,
        plan: TrainingPlan,
        *,
        callbacks: Sequence[Any] = (),
        stopped: Callable[[], bool] = lambda: False,
        verbose: int = 0,
        initial_epoch: int = 0,
    ) -> None:
        """Train `plan.model` for `epochs`: the space's own `fit` if it has one, the plan's
        callbacks after `callbacks`, and its fine-tuning phase.

        Args:
            plan: what `build` returned.
            callbacks: the caller's Keras callbacks. Defaults to `()`.
            stopped: whether the first phase ended training for good (early stopping, pruning,
                NaN), so the fine-tuning phase must not start. Defaults to never.
            verbose: Keras `fit` verbosity. Defaults to `0`.
            initial_epoch: epochs already trained (a trial resumed mid-way, its model loaded
                with its optimizer state): training continues after it, in the phase it falls
                in. Defaults to `0`.
        """
        model = plan.model
        train, val, batch_size = self.pipelines(model)
        all_callbacks = [*callbacks, *plan.callbacks_for(validation=val is not None)]
        for index, (first, last) in enumerate(plan.phases(self.epochs)):
            if last <= initial_epoch:
                continue  # trained before the trial resumed
            if index == 1 and first >= initial_epoch:
                # (A model saved after the switch was recompiled for fine-tuning already.)
                assert plan.fine_tune is not None
                if stopped():
                    break
                _start_fine_tuning(model, plan.fine_tune)
                if self.jit:  # compile() resets it
                    model.jit_compile = True
            kwargs: dict[str, Any] = {
                "epochs": last,
                "initial_epoch": max(first, initial_epoch),
                "callbacks": all_callbacks,
                "verbose": verbose,
            }
            if val is not None:
                kwargs["validation_data"] = val
            self.fit_call(model, train, batch_size, kwargs)

    def pipelines(self, model: Any) -> tuple[Any, Any, int]:
        """The training and validation pipelines for `model` (its input shape) and the batch
        size; sets the model's steps per call and XLA as a trial trains."""
        from automl.data.pipeline import make_pipeline

        batch_size = batch_size_of(self.hp, self.space.settings.batch_size)
        target = tuple(model.input_shape[1:]) if model.inputs else None
        train = make_pipeline(
            self.train, batch_size=batch_size, training=True, seed=self.seed, target_shape=target
        )
        val = None
        if self.val is not None:
            val = make_pipeline(
                self.val,
                batch_size=validation_batch_size(
                    batch_size, target if target and None not in target else self.val.x.shape[1:]
                ),
                training=False,
                target_shape=target,
            )
        run_epochs_in_one_call(model, steps=-(-self.train_size // batch_size))
        if self.jit:
            model.jit_compile = True
        return train, val, batch_size

    def fit_call(self, model: Any, train: Any, batch_size: int, kwargs: dict[str, Any]) -> None:
        """One `fit`: Keras's, or the space's own `fit` (with a dataset, or with arrays)."""
        fit_fn = self.space.fit_fn
        if fit_fn is None:
            model.fit(train, shuffle=False, **kwargs)  # the pipeline shuffles
        elif takes_arrays(fit_fn):
            # Keras Tuner's `fit(self, hp, model, x, y, **kwargs)`: the training arrays.
            x, y = self.train_arrays
            fit_fn(self.hp, model, x, y, batch_size=batch_size, **kwargs)
        else:
            fit_fn(self.hp, model, train, **kwargs)

    @functools.cached_property
    def train_arrays(self) -> tuple[Any, Any]:
        """The training images as one float32 array and their labels, made once (every phase,
        and every epoch of repeats, passes the same arrays to a `fit(hp, model, x, y)`)."""
        import numpy as np

        parts = self.train if isinstance(self.train, tuple) else (self.train,)
        x = np.concatenate([np.asarray(p.x, dtype=np.float32) for p in parts])
        return x, np.concatenate([p.y for p in parts])


def batch_size_of(hp: HyperParameters, default: int | None = None) -> int:
    """The `batch_size` hyperparameter, else the space's `BATCH_SIZE`, else 32."""
    value = hp.values.get("batch_size")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default or DEFAULT_BATCH_SIZE


def fit_in_step(
    runs: Sequence[tuple[TrialTraining, TrainingPlan]],
    on_epoch: Callable[[int, dict[str, float]], bool],
    *,
    on_epoch_begin: Callable[[], None] = lambda: None,
    verbose: int = 0,
) -> None:
    """Train several models of one configuration (built with different seeds) epoch by epoch
    together: after each epoch, `on_epoch(epoch, logs)` gets the mean of their logs (the
    trial's objective, pruning and early stopping follow the mean curve: Keras Tuner's
    `executions_per_trial`) and returns False to stop.

    Raises:
        SpaceError: a plan with a fine-tuning phase (not supported with repeats).
    """
    import numpy as np

    from automl.errors import SpaceError

    for _, plan in runs:
        if plan.fine_tune is not None:
            raise SpaceError(
                "--repeats (executions_per_trial) does not support a plan with a fine-tuning "
                "phase; search with one execution per trial."
            )
    import keras

    prepared = []
    for training, plan in runs:
        # Each pipeline's shuffling draws on the global seed, as when the model trains alone.
        keras.utils.set_random_seed(global_seed(training.seed))
        prepared.append((training, plan, *training.pipelines(plan.model)))
    for epoch in range(runs[0][0].epochs):
        on_epoch_begin()
        logs: list[dict[str, float]] = []
        for training, plan, train, val, batch_size in prepared:
            last = _last_logs()
            kwargs: dict[str, Any] = {
                "epochs": epoch + 1,
                "initial_epoch": epoch,
                "callbacks": [last, *plan.callbacks_for(validation=val is not None)],
                "verbose": verbose,
            }
            if val is not None:
                kwargs["validation_data"] = val
            training.fit_call(plan.model, train, batch_size, kwargs)
            logs.append(last.logs)
        common = set.intersection(*(set(entry) for entry in logs))
        mean = {key: float(np.mean([entry[key] for entry in logs])) for key in sorted(common)}
        if not on_epoch(epoch + 1, mean):
            return


def _last_logs() -> Any:
    """A Keras callback keeping the numeric logs of the last epoch (`.logs`)."""
    import keras

    class LastLogs(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.logs: dict[str, float] = {}

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.logs = {k: float(v) for k, v in (logs or {}).items() if is_number(v)}

    return LastLogs()


def is_number(value: Any) -> bool:
    """Whether a Keras log value is a number (logs may hold other things)."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def run_epochs_in_one_call(model: Any, steps: int) -> None:
    """One tf.function call per epoch instead of one per batch: epochs of small models run
    about twice as fast. Epoch callbacks are unaffected; a space that sets its own
    `steps_per_execution` in compile() keeps it."""
    if getattr(model, "steps_per_execution", 1) == 1:
        model.steps_per_execution = max(1, min(MAX_STEPS_PER_EXECUTION, steps))


def _start_fine_tuning(model: Any, fine_tune: FineTune) -> None:
    optimizer = model.optimizer
    rate = optimizer.learning_rate
    current = float(rate.numpy() if hasattr(rate, "numpy") else rate)
    unfrozen = fine_tune.unfreeze()
    config = optimizer.get_config()
    config["learning_rate"] = current * fine_tune.learning_rate_factor
    new_optimizer = type(optimizer).from_config(config)
    model.compile(
        optimizer=new_optimizer,
        loss=model.loss,
        metrics=_compiled_metrics(model),
    )
    log.debug("fine-tuning %d layers at learning rate %g", unfrozen, config["learning_rate"])


def _compiled_metrics(model: Any) -> list[Any]:
    config = getattr(model, "_compile_config", None)
    metrics = config.config.get("metrics") if config is not None else None
    return list(metrics) if metrics else ["accuracy"]
