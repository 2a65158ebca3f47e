"""The training plan: what a space asks of training beyond one `model.fit`.

`build(hp[, info])` returns a compiled `keras.Model`, or a `TrainingPlan` holding that model with
extra Keras callbacks and an optional fine-tuning phase. The trial runner and retraining follow
the plan; a bare model is a plan of one phase with no extra callbacks. The zoo's `fine_tune`,
`add_callbacks` and `reduce_on_plateau` make plans.

No Keras import here: the loader and the runner read plans without building anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class FineTune:
    """Second phase of a transfer-learning trial: unfreeze the top layers of `base`.

    Attributes:
        base: the pretrained base model (from `zoo.application_backbone`), built frozen.
        layers: how many of its top layers to unfreeze (BatchNorm stays frozen).
        at_fraction: fraction of the epochs spent on the frozen phase first. Defaults to `0.5`.
        learning_rate_factor: the fine-tuning learning rate is the first phase's times this.
            Defaults to `0.1`.
    """

    base: keras.Model
    layers: int
    at_fraction: float = 0.5
    learning_rate_factor: float = 0.1

    def switch_epoch(self, epochs: int) -> int:
        """0-based epoch at which fine-tuning starts (at least one epoch of each phase)."""
        return min(max(1, round(epochs * self.at_fraction)), max(1, epochs - 1))

    def unfreeze(self) -> int:
        """Unfreeze the top `layers` layers (BatchNorm stays frozen); returns how many."""
        from keras import layers

        self.base.trainable = True
        count = 0
        for index, layer in enumerate(reversed(self.base.layers)):
            trainable = index < self.layers and not isinstance(layer, layers.BatchNormalization)
            layer.trainable = trainable
            count += trainable
        return count


@dataclass(frozen=True)
class TrainingPlan:
    """A compiled model and how to train it; `build` may return one instead of the bare model.

    Attributes:
        model: the compiled `keras.Model`.
        callbacks: Keras callbacks added to every `fit` of the model; those that watch a `val_*`
            metric are left out when training has no validation data (retraining).
            Defaults to `()`.
        fine_tune: a second phase that unfreezes part of a pretrained base, sharing the epochs
            with the first. Defaults to `None` (one phase).
    """

    model: keras.Model
    callbacks: tuple[keras.callbacks.Callback, ...] = ()
    fine_tune: FineTune | None = None

    def __post_init__(self) -> None:
        # A list given by a space file must not stay shared with the caller.
        object.__setattr__(self, "callbacks", tuple(self.callbacks))
        made = _MADE.get()
        if made is not None:
            made.append(self)

    @classmethod
    def of(cls, built: keras.Model | TrainingPlan) -> TrainingPlan:
        """`built` itself when it is a plan, else a plan of one phase and no extra callbacks."""
        return built if isinstance(built, TrainingPlan) else cls(built)

    def phases(self, epochs: int) -> tuple[tuple[int, int], ...]:
        """(initial epoch, last epoch) of each `fit`: one phase, or two sharing `epochs`."""
        if self.fine_tune is None or epochs < 2:
            return ((0, epochs),)
        switch = self.fine_tune.switch_epoch(epochs)
        return ((0, switch), (switch, epochs))

    def callbacks_for(self, *, validation: bool) -> tuple[keras.callbacks.Callback, ...]:
        """The extra callbacks that apply with (or without) validation data."""
        if validation:
            return self.callbacks
        return tuple(
            c for c in self.callbacks if not str(getattr(c, "monitor", "")).startswith("val_")
        )


# The plans made while one `build` call runs (None outside of one), so that a `build` that
# makes a plan for its model but returns the bare model (as `zoo.fine_tune(model, …)` was once
# used) is told so instead of silently training without it.
_MADE: ContextVar[list[TrainingPlan] | None] = ContextVar("automl_plans_made", default=None)


@contextmanager
def plans_made() -> Iterator[list[TrainingPlan]]:
    """Collect the plans made inside the block (one `build` call)."""
    made: list[TrainingPlan] = []
    token = _MADE.set(made)
    try:
        yield made
    finally:
        _MADE.reset(token)
