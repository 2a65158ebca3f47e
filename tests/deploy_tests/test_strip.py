"""Augmentation layers are removed from inference models without changing their outputs."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from automl.deploy.strip import strip_augmentation  # noqa: E402
from automl.spaces import zoo  # noqa: E402


def _functional() -> object:
    inputs = keras.Input((8, 8, 1))
    x = zoo.augmentation(
        inputs, flip="horizontal", rotation=0.1, translation=0.1, zoom=0.1, contrast=0.2
    )
    branch = zoo.conv_stack(zoo.rescale(x), depth=1, filters=4)
    return keras.Model(inputs, zoo.classifier_head(branch, 3, dense_units=8))


def _sequential() -> object:
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.RandomFlip("horizontal"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


@pytest.mark.parametrize("make", [_functional, _sequential], ids=["functional", "sequential"])
def test_stripping_keeps_outputs_and_drops_random_layers(make: object, tf: object) -> None:
    model = make()  # type: ignore[operator]
    clean = strip_augmentation(model)
    names = [type(layer).__name__ for layer in clean.layers]
    assert not any(name.startswith("Random") for name in names)
    x = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 1)).astype("float32")
    assert np.allclose(model.predict(x, verbose=0), clean.predict(x, verbose=0), atol=1e-6)
    assert clean.count_params() == model.count_params()


def test_model_without_augmentation_is_returned_as_is(tf: object) -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert strip_augmentation(model) is model
