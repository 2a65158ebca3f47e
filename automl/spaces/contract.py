"""What a space's `build` may return, and the checks that hold it to that.

`build(hp[, info])` returns a compiled `keras.Model`, or a `TrainingPlan` of one (extra callbacks,
a fine-tuning phase). Models with a `Lambda` layer are refused: exported models must load with
`safe_mode=True`. Every broken rule is a `SpaceError` that starts with the caller's `where`
(`file:line` of `build`).
"""

from __future__ import annotations

from typing import Any

from automl.errors import SpaceError
from automl.spaces.plan import TrainingPlan


def checked_plan(built: object, where: str) -> TrainingPlan:
    """`built` as a `TrainingPlan` (a bare model becomes a plan of one phase), once checked.

    Args:
        built: what `build` returned.
        where: `file:line` of `build`, the start of every message.

    Raises:
        SpaceError: `built` is neither a compiled `keras.Model` nor a `TrainingPlan` of one with
            Keras callbacks and a `keras.Model` base, or the model uses a `Lambda` layer.
    """
    import keras

    if not isinstance(built, TrainingPlan):
        _check_model(built, type(built).__name__, where)
        return TrainingPlan(built)
    _check_model(built.model, f"a TrainingPlan of {type(built.model).__name__}", where)
    for callback in built.callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise SpaceError(
                f"{where}: the TrainingPlan's callbacks must be keras.callbacks.Callback objects, "
                f"got {type(callback).__name__}; pass Keras callbacks only."
            )
    base = built.fine_tune.base if built.fine_tune is not None else None
    if base is not None and not isinstance(base, keras.Model):
        raise SpaceError(
            f"{where}: the TrainingPlan's fine-tuning base must be a keras.Model, got "
            f"{type(base).__name__}; pass the base model that zoo.application_backbone returns."
        )
    return built


def _check_model(model: object, shown_type: str, where: str) -> None:
    import keras

    if not isinstance(model, keras.Model):
        raise SpaceError(
            f"{where}: build() must return a compiled keras.Model, got {shown_type}; end build() "
            "with model.compile(...) and return model (or a TrainingPlan of it)."
        )
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise SpaceError(
            f"{where}: build() returned a model that is not compiled; call "
            "model.compile(optimizer=..., loss=..., metrics=['accuracy']) before returning it."
        )
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.Lambda):
            raise SpaceError(
                f"{where}: build() uses a Lambda layer ('{layer.name}'); Lambda layers make "
                "exported models unsafe to load (safe_mode=True refuses them). Use built-in "
                "layers or a custom layer registered with "
                "@keras.saving.register_keras_serializable()."
            )


def _all_layers(model: Any) -> list[Any]:
    found = []
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        found.append(layer)
        stack.extend(getattr(layer, "layers", []))
    return found
