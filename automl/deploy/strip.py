"""Turning a trained model into the one export writes: augmentation removed, float32 throughout.

Random augmentation layers only act in training (they are the identity at inference); export
removes them so that every inference graph it writes is free of them. This module owns
recognising those layers (the zoo's `augment_` prefix or a Keras `Random*` class) and rebuilding
the model without them, weights kept. A model trained under mixed precision (`--precision`) is
rebuilt with float32 layers, so that every export format and `predict` run float32 (its
variables were float32 all along, so nothing is lost).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_trained(path: Path | str) -> Any:
    """A trained `.keras` model, loaded safely for export (its optimizer state is not used).

    A model trained under mixed precision carries a loss-scale optimizer; loaded in a float32
    process, Keras builds a plain one and warns that it skipped the extra variables. Export
    never trains, so that warning is noise to the user and is not shown.
    """
    import warnings

    import keras

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        return keras.saving.load_model(path, safe_mode=True)


def strip_augmentation(model: Any) -> Any:
    """The same model without its random augmentation layers (identity at inference).

    Functional models are rebuilt from their config with each augmentation layer's input wired
    to its consumers; weights are copied by layer name.
    """
    import keras

    from automl.spaces.zoo import AUGMENTATION_PREFIX

    random_layers = tuple(
        getattr(keras.layers, name)
        for name in (
            "RandomFlip",
            "RandomRotation",
            "RandomZoom",
            "RandomTranslation",
            "RandomContrast",
            "RandomBrightness",
            "RandomCrop",
        )
        if hasattr(keras.layers, name)
    )

    def is_augmentation(layer: Any) -> bool:
        return layer.name.startswith(AUGMENTATION_PREFIX) or isinstance(layer, random_layers)

    removed = [layer.name for layer in model.layers if is_augmentation(layer)]
    if not removed:
        return model
    if isinstance(model, keras.Sequential):
        kept = [layer for layer in model.layers if not is_augmentation(layer)]
        clean = keras.Sequential([keras.Input(model.input_shape[1:]), *kept], name=model.name)
        return clean
    config = model.get_config()
    replacement: dict[str, list[Any]] = {}
    for layer in config["layers"]:
        if layer["name"] in removed:
            inbound = layer["inbound_nodes"][0]["args"][0]
            replacement[layer["name"]] = inbound["config"]["keras_history"]

    def resolve(history: list[Any]) -> list[Any]:
        while history[0] in replacement:
            history = replacement[history[0]]
        return history

    def rewire(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                value["config"]["keras_history"] = resolve(value["config"]["keras_history"])
                return value
            return {k: rewire(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(rewire(v) for v in value)
        return value

    config["layers"] = [rewire(layer) for layer in config["layers"] if layer["name"] not in removed]
    outputs = config["output_layers"]
    if outputs and isinstance(outputs[0], str):  # a single output: [name, node, tensor]
        config["output_layers"] = resolve(outputs)
    else:
        config["output_layers"] = [resolve(h) for h in outputs]
    clean = model.__class__.from_config(config)
    for layer in clean.layers:
        source = model.get_layer(layer.name)
        layer.set_weights(source.get_weights())
    return clean


def float32_model(model: Any) -> Any:
    """The same model with every layer's dtype policy float32 (unchanged when it is already)."""
    import keras

    def mixed(layer: Any) -> bool:
        policy = getattr(layer, "dtype_policy", None)
        return getattr(policy, "name", "float32") != "float32"

    if not any(mixed(layer) for layer in _all_layers(model)):
        return model
    config = model.get_config()

    def to_float32(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(
                value.get("config"), dict
            ):
                return {**value, "config": {**value["config"], "name": "float32"}}
            return {k: to_float32(v) for k, v in value.items()}
        if isinstance(value, list):
            return [to_float32(v) for v in value]
        return value

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")  # layers built without a policy of their own
    try:
        clean = model.__class__.from_config(to_float32(config))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    clean.set_weights(model.get_weights())
    return clean


def _all_layers(model: Any) -> list[Any]:
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found += _all_layers(layer)
    return found
