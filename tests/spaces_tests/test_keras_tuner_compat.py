"""The same unchanged hypermodels run under keras_tuner.HyperParameters and under ours.

The hypermodels are written the way Keras Tuner's documentation writes them; one of them is
spaces/keras_tuner_style.py itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from automl.spaces import FixedAnswers, HyperParameters, RandomAnswers, SpaceInfo, load_space

from ..conftest import SPACES

keras = pytest.importorskip("keras")
kt = pytest.importorskip("keras_tuner")
layers = keras.layers


@functools.cache
def keras_tuner_style() -> Any:
    """spaces/keras_tuner_style.py's hypermodel (Keras Tuner's "Getting started": a loop over
    hp.Int("num_layers"), Boolean, log Float), loaded from the file itself."""
    return load_space(SPACES / "keras_tuner_style.py").module.hypermodel


def build_conditional(hp: Any) -> Any:
    """Keras Tuner's conditional_scope example (model selection)."""
    model = keras.Sequential()
    model.add(keras.Input(shape=(8, 8, 1)))
    model_type = hp.Choice("model_type", ["mlp", "cnn"])
    with hp.conditional_scope("model_type", ["mlp"]):
        if model_type == "mlp":
            model.add(layers.Flatten())
            model.add(layers.Dense(hp.Int("mlp_units", 16, 64, step=16), activation="relu"))
    with hp.conditional_scope("model_type", ["cnn"]):
        if model_type == "cnn":
            model.add(layers.Conv2D(hp.Int("cnn_filters", 8, 32, step=8), 3, activation="relu"))
            model.add(layers.GlobalAveragePooling2D())
    model.add(layers.Dense(10, activation="softmax"))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class ChoiceStepFixedHyperModel(kt.HyperModel):
    """A HyperModel subclass: ordered Choice, Float with step, Fixed, log Int with step."""

    def build(self, hp: Any) -> Any:
        inputs = keras.Input(shape=(8, 8, 1))
        x = layers.Flatten()(inputs)
        x = layers.Dense(hp.Choice("units", [8, 16, 32], ordered=True), activation="relu")(x)
        x = layers.Dense(hp.Int("width", 4, 64, step=2, sampling="log"), activation="relu")(x)
        x = layers.Dropout(hp.Float("dropout", 0.0, 0.5, step=0.1))(x)
        outputs = layers.Dense(hp.Fixed("classes", 10), activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.SGD(hp.Float("lr", 1e-3, 1e-1, sampling="log")),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
        return model.fit(*args, **kwargs)


# Each hypermodel's build, looked up when a test runs: the space file is loaded then, not while
# pytest collects.
HYPERMODELS: dict[str, Callable[[], Callable[[Any], Any]]] = {
    "keras-tuner-style-file": lambda: keras_tuner_style().build,
    "conditional": lambda: build_conditional,
    "hypermodel": lambda: ChoiceStepFixedHyperModel().build,
}


def _params(model: Any) -> int:
    if not model.built:
        model.build((None, 8, 8, 1))
    return int(model.count_params())


@pytest.mark.parametrize("name", list(HYPERMODELS))
def test_defaults_agree_with_keras_tuner(name: str, tf: object) -> None:
    build = HYPERMODELS[name]()
    theirs = kt.HyperParameters()
    ours = HyperParameters()
    their_model = build(theirs)
    our_model = build(ours)
    assert ours.values == theirs.values
    assert _params(our_model) == _params(their_model)


@pytest.mark.parametrize("name", list(HYPERMODELS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sampled_values_build_the_same_model_in_both(name: str, seed: int, tf: object) -> None:
    build = HYPERMODELS[name]()
    ours = HyperParameters(RandomAnswers(seed))
    our_model = build(ours)
    theirs = kt.HyperParameters()
    theirs.values.update(ours.values)  # Keras Tuner uses values already present
    their_model = build(theirs)
    assert theirs.values == ours.values
    assert _params(their_model) == _params(our_model)
    # Every value we gave is one Keras Tuner's own definition accepts.
    for their_hp in theirs.space:
        if their_hp.name in ours.values and their_hp.name != "classes":
            assert their_hp.prob_to_value(their_hp.value_to_prob(ours.values[their_hp.name])) == (
                pytest.approx(ours.values[their_hp.name])
            )


def test_conditional_branches_are_inactive_in_both(tf: object) -> None:
    values = {"model_type": "cnn", "cnn_filters": 16}
    ours = HyperParameters(FixedAnswers(values))
    build_conditional(ours)
    theirs = kt.HyperParameters()
    theirs.values.update(values)
    build_conditional(theirs)
    assert ours.values == theirs.values == values


def test_a_keras_tuner_search_result_replays_through_our_hp(tmp_path: Path, tf: object) -> None:
    """Run a real Keras Tuner search, then rebuild its best model from the stored values."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 64)
    tuner = kt.RandomSearch(
        hypermodel=ChoiceStepFixedHyperModel(),
        objective="val_accuracy",
        max_trials=2,
        directory=str(tmp_path),
        project_name="compat",
        seed=1,
    )
    tuner.search(x, y, epochs=1, validation_data=(x, y), verbose=0)
    best = tuner.get_best_hyperparameters(1)[0]
    hp = HyperParameters(FixedAnswers(best.values))
    rebuilt = ChoiceStepFixedHyperModel().build(hp)
    assert hp.values == best.values
    assert _params(rebuilt) == _params(tuner.hypermodel.build(best))


def test_keras_tuner_style_space_file_loads(write_space: Callable[..., Path], tf: object) -> None:
    path = write_space(
        """
        import keras
        from keras import layers


        def build_model(hp):
            model = keras.Sequential()
            model.add(layers.Flatten())
            model.add(layers.Dense(hp.Int("units", 32, 128, step=32), activation="relu"))
            model.add(layers.Dense(10, activation="softmax"))
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
            return model


        build = build_model
        """
    )
    model = load_space(path).build(HyperParameters(), SpaceInfo((8, 8, 1), 10, tuple("0123456789")))
    assert model.count_params() == 8 * 8 * 32 + 32 + 32 * 10 + 10


def test_the_flagship_space_runs_under_a_keras_tuner_search(tmp_path: Path, tf: object) -> None:
    """spaces/cnn.py's build, unchanged, through a real Keras Tuner search (which also
    activates every conditional scope of the space)."""
    from automl.data import load_dataset

    data = load_dataset("digits")
    space = load_space(SPACES / "cnn.py")
    info = SpaceInfo(data.input_shape, data.num_classes, data.class_names, len(data.train), 1)
    tuner = kt.RandomSearch(
        lambda hp: space.build(hp, info),
        objective="val_accuracy",
        max_trials=1,
        directory=str(tmp_path),
        project_name="cnn",
        seed=0,
    )
    x, y = data.train.x[:64].astype("float32"), data.train.y[:64]
    tuner.search(x, y, epochs=1, validation_data=(x, y), verbose=0)
    assert tuner.get_best_hyperparameters(1)[0].get("backbone") in ("conv", "resnet")
