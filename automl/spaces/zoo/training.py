"""The zoo's training-plan helpers: extra callbacks, the plateau schedule and two-phase
fine-tuning.

Each takes the compiled model, or a `TrainingPlan` already made from it, and returns a new plan
(the model is left as it is); `build` returns that plan, e.g.
`return zoo.fine_tune(zoo.reduce_on_plateau(model), base, layers=20)`.
"""

from __future__ import annotations

from dataclasses import replace

import keras

from automl.spaces.plan import FineTune, TrainingPlan


def fine_tune(
    model: keras.Model | TrainingPlan,
    base: keras.Model,
    *,
    layers: int,
    at_fraction: float = 0.5,
    learning_rate_factor: float = 0.1,
) -> TrainingPlan:
    """Train with `base` frozen first, then unfreeze its top `layers` at a lower learning rate.

    Both phases share the trial's epoch budget; the runner recompiles between them.

    Args:
        model: the compiled model, or a plan of it.
        base: its pretrained base, built frozen (`application_backbone(..., trainable=False)`).
        layers: number of top layers of `base` to unfreeze; 0 keeps it frozen throughout.
        at_fraction: fraction of the epochs for the frozen phase. Defaults to `0.5`.
        learning_rate_factor: fine-tuning learning rate = initial rate × this.
            Defaults to `0.1`.

    Returns:
        The plan, with the fine-tuning phase when `layers` > 0.
    """
    plan = TrainingPlan.of(model)
    if layers <= 0:
        return plan
    return replace(plan, fine_tune=FineTune(base, layers, at_fraction, learning_rate_factor))


def add_callbacks(
    model: keras.Model | TrainingPlan, *callbacks: keras.callbacks.Callback
) -> TrainingPlan:
    """The plan with Keras callbacks the trial runner passes to `fit` for this model.

    Args:
        model: the compiled model, or a plan of it.
        *callbacks: the callbacks to add after the plan's own.
    """
    plan = TrainingPlan.of(model)
    return replace(plan, callbacks=(*plan.callbacks, *callbacks))


def reduce_on_plateau(
    model: keras.Model | TrainingPlan, *, factor: float = 0.5, patience: int = 2
) -> TrainingPlan:
    """The plan with the learning rate cut when the validation loss stalls (trials only:
    retraining has no validation data).

    Args:
        model: the compiled model, or a plan of it.
        factor: the learning rate is multiplied by this at each cut. Defaults to `0.5`.
        patience: epochs without improvement before a cut. Defaults to `2`.
    """
    return add_callbacks(
        model,
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=factor, patience=patience, min_lr=1e-7, verbose=0
        ),
    )
