"""The hypermodels of Keras Tuner's own "Getting started" (a build function, a `HyperModel`
subclass tuning `fit`, and a `fit(hp, model, x, y)` override), run as its documentation runs
them (one-hot labels, `categorical_crossentropy`) through `keras_tuner.RandomSearch` and through
`automl.Tuner`: both define the same parameters and build the same models from the same values."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from ..conftest import run_script

SCRIPT = """
import json
import keras
import keras_tuner
import numpy as np
from keras import layers
from sklearn.datasets import load_digits
import automl
from automl.spaces.hyperparameters import HyperParameters
from automl.spaces.replay import FixedAnswers

digits = load_digits()
x = digits.images.astype("float32") / 16.0
y = keras.utils.to_categorical(digits.target, 10)
x_train, y_train, x_val, y_val = x[:1400], y[:1400], x[1400:], y[1400:]


def build_model(hp):
    model = keras.Sequential()
    model.add(layers.Flatten())
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(layers.Dense(units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
                               activation=hp.Choice("activation", ["relu", "tanh"])))
    if hp.Boolean("dropout"):
        model.add(layers.Dropout(rate=0.25))
    model.add(layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


class MyHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        return build_model(hp)

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, shuffle=hp.Boolean("shuffle"), **kwargs)


class NormalizingHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential()
        model.add(layers.Flatten())
        model.add(layers.Dense(units=hp.Int("units", min_value=32, max_value=512, step=32),
                               activation="relu"))
        model.add(layers.Dense(10, activation="softmax"))
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, x, y, **kwargs):
        if hp.Boolean("normalize"):
            x = layers.Normalization()(x)
        return model.fit(x, y, shuffle=hp.Boolean("shuffle"), **kwargs)


def shapes(model):
    model.build((None, 8, 8))
    return [model.count_params(), [list(layer.output.shape[1:]) for layer in model.layers]]


results = {}
for name, hypermodel, executions in [("function", build_model, 2),
                                     ("subclass", MyHyperModel(), 1),
                                     ("fit_xy", NormalizingHyperModel(), 1)]:
    theirs = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy", max_trials=2,
                                      directory="kt", project_name=name, seed=1,
                                      executions_per_trial=executions)
    theirs.search(x_train, y_train, epochs=1, validation_data=(x_val, y_val), verbose=0)
    ours = automl.Tuner(hypermodel, objective="val_accuracy", max_trials=2, workers=2,
                        study=name, seed=1, executions_per_trial=executions)
    ours.search(x_train, y_train, epochs=1, validation_data=(x_val, y_val))
    kt_values = theirs.get_best_hyperparameters(1)[0].values
    # The same values built by both: Keras Tuner's hp, and ours answering them.
    kt_hp = keras_tuner.HyperParameters()
    for key, value in kt_values.items():
        kt_hp.Fixed(key, value)
    kt_model = build_model(kt_hp) if name != "fit_xy" else hypermodel.build(kt_hp)
    our_hp = HyperParameters(FixedAnswers(kt_values, missing="default"))
    our_model = ours.hypermodel.build(our_hp)
    best = ours.get_best_hyperparameters(1)[0]
    results[name] = {
        "kt_names": sorted(p.name for p in theirs.oracle.get_space().space),
        "our_names": sorted({k for t in ours.study.trials for k in t.params}),
        "kt_shapes": shapes(kt_model),
        "our_shapes": shapes(our_model),
        "our_best_model": list(ours.get_best_models(1)[0].predict(x_val[:2], verbose=0).shape),
        "our_best_rebuilt": shapes(ours.hypermodel.build(best))[0] > 0,
        "finished": len([t for t in ours.study.trials if t.state.is_finished()]),
    }
print("RESULTS " + json.dumps(results))
"""


def test_keras_tuner_getting_started_hypermodels_run_the_same_in_both(tmp_path: Path) -> None:
    script = tmp_path / "getting_started.py"
    script.write_text(textwrap.dedent(SCRIPT))
    result = run_script(script, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULTS "))
    results = json.loads(line.removeprefix("RESULTS "))
    for name, found in results.items():
        assert found["finished"] == 2, name
        assert found["kt_shapes"] == found["our_shapes"], name
        assert found["our_best_model"] == [2, 10] and found["our_best_rebuilt"], name
        # Every parameter our trials met is one Keras Tuner's search defined.
        assert set(found["our_names"]) <= set(found["kt_names"]) | {"units_1", "units_2"}, name
    assert "shuffle" in results["subclass"]["our_names"]  # defined in fit(), searched
    assert {"normalize", "shuffle", "units"} == set(results["fit_xy"]["our_names"])
