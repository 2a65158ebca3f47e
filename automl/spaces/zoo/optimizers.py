"""Optimizers, learning-rate schedules and compiling a classifier: how a zoo model learns."""

from __future__ import annotations

from typing import Any

import keras

from automl.errors import SpaceError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


def make_optimizer(
    name: str,
    learning_rate: Any,
    *,
    weight_decay: float = 1e-4,
    momentum: float = 0.9,
) -> keras.optimizers.Optimizer:
    """A Keras optimizer by name.

    Args:
        name: one of `adam`, `adamw`, `sgd` (with momentum, Nesterov), `rmsprop`.
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`.
        weight_decay: decoupled weight decay of `adamw`. Defaults to `1e-4`.
        momentum: momentum of `sgd` and `rmsprop`. Defaults to `0.9`.

    Raises:
        SpaceError: `name` is none of the above.
    """
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=True)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, momentum=momentum)
    raise SpaceError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}.")


def compile_classifier(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    *,
    num_classes: int,
    top5: bool = False,
) -> keras.Model:
    """Compile for integer labels with accuracy.

    Args:
        model: the model.
        optimizer: its optimizer.
        num_classes: number of classes.
        top5: also track top-5 accuracy (above 5 classes). Defaults to `False`: every metric
            adds to the graph each trial traces; test top-5 accuracy is computed after
            retraining anyway.
    """
    metrics: list[Any] = ["accuracy"]
    if top5 and num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=metrics)
    return model


SCHEDULES = ("constant", "cosine", "plateau")


def learning_rate_schedule(
    name: str,
    learning_rate: float,
    *,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 1.0,
) -> Any:
    """A learning rate or schedule by name: `constant`, `cosine` (with linear warmup), or
    `plateau` (constant here; pair it with `reduce_on_plateau(model)`).

    Args:
        name: the schedule.
        learning_rate: the peak (or constant) learning rate.
        epochs: the trial's epoch budget (`info.epochs`).
        steps_per_epoch: batches per epoch (`info.steps_per_epoch(batch_size)`).
        warmup_epochs: warmup length of `cosine`. Defaults to `1.0`.
    """
    if name in ("constant", "plateau"):
        return learning_rate
    if name == "cosine":
        total = max(1, epochs * steps_per_epoch)
        warmup = min(total - 1, round(warmup_epochs * steps_per_epoch))
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=learning_rate * 0.1 if warmup else learning_rate,
            decay_steps=max(1, total - warmup),
            alpha=0.01,
            warmup_target=learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    raise SpaceError(f"unknown learning-rate schedule {name!r}; use one of {', '.join(SCHEDULES)}.")
