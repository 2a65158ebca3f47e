"""`automl.Tuner` as Keras Tuner users run it: resume and overwrite, a changed hypermodel, a
`HyperModel` whose `fit` gets the validation data and callbacks, `tf.data` input, and Ctrl-C."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from automl import AutoMLError, Tuner

from ..conftest import REPO, run_script


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype("float32") / 16.0, digits.target


def build_small(hp):  # type: ignore[no-untyped-def]
    import keras

    model = keras.Sequential(
        [
            keras.layers.Flatten(),
            keras.layers.Dense(hp.Int("units", 8, 32, step=8), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_changed(hp):  # type: ignore[no-untyped-def]
    import keras

    model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    hp.Choice("unused", [1, 2])
    return model


def _finished(tuner: Tuner) -> list[int]:
    return sorted(t.number for t in tuner.study.trials if t.state.is_finished())


def test_search_resumes_a_changed_hypermodel_is_refused_and_overwrite_starts_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = _digits()
    data = {"x": x[:1200], "y": y[:1200], "validation_data": (x[1200:], y[1200:]), "epochs": 2}
    common = {"directory": tmp_path, "study": "resumed", "workers": 1}
    first = Tuner(build_small, max_trials=2, **common)  # type: ignore[arg-type]
    first.search(**data)
    assert _finished(first) == [0, 1]
    params = [t.params for t in first.study.trials]
    # The same hypermodel with a higher total resumes: the two trials stay, one more runs.
    again = Tuner(build_small, max_trials=3, **common)  # type: ignore[arg-type]
    again.search(**data)
    assert _finished(again) == [0, 1, 2] and [t.params for t in again.study.trials][:2] == params
    # Another hypermodel under the same name is refused before any trial, with the fix.
    with pytest.raises(AutoMLError, match="changed"):
        Tuner(build_changed, max_trials=4, **common).search(**data)  # type: ignore[arg-type]
    assert _finished(again) == [0, 1, 2]
    fresh = Tuner(build_changed, max_trials=1, overwrite=True, deterministic=True, **common)  # type: ignore[arg-type]
    fresh.search(**data)
    assert _finished(fresh) == [0] and set(fresh.study.trials[0].params) == {"unused"}
    from automl.storage.store import StudyStore

    # (searched with op determinism: `automl trial --replay resumed:0` reproduces it)
    assert StudyStore(fresh.storage).record("resumed").settings.deterministic
    assert "Study 'resumed': 1 of 1 finished" in capsys.readouterr().out


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    x, y = _digits()
    tuner = Tuner(build_small, max_trials=1, directory=tmp_path)
    with pytest.raises(AutoMLError, match="not one-hot"):
        tuner.search(x, np.stack([y, y], axis=1))
    with pytest.raises(AutoMLError, match=r"y .*missing"):
        tuner.search(x)
    with pytest.raises(AutoMLError, match="steps_per_epoch"):
        tuner.search(x, y, steps_per_epoch=3)
    with pytest.raises(AutoMLError, match="validation_data must be a pair"):
        tuner.search(x, y, validation_data=x)
    with pytest.raises(AutoMLError, match="max_trials"):
        Tuner(build_small, max_trials=0)
    with pytest.raises(AutoMLError, match=r"seed must be between 0 and 2147483647, got -1"):
        Tuner(build_small, seed=-1)
    with pytest.raises(AutoMLError, match=r"seed needs a whole number, got '3'"):
        Tuner(build_small, seed="3")
    with pytest.raises(AutoMLError, match=r"min_epochs must be a positive integer, got 0"):
        Tuner(build_small, min_epochs=0)
    # Keras Tuner's own arguments: accepted at their defaults, else refused with what to do.
    Tuner(build_small, max_retries_per_trial=0, tune_new_entries=True, distribution_strategy=None)
    with pytest.raises(AutoMLError, match=r"max_retries_per_trial=3 is not supported.*retried"):
        Tuner(build_small, max_retries_per_trial=3)
    with pytest.raises(AutoMLError, match=r"tune_new_entries=False .*hp.Fixed"):
        Tuner(build_small, tune_new_entries=False)
    with pytest.raises(AutoMLError, match=r"unknown argument 'max_trails'"):
        Tuner(build_small, max_trails=3)
    assert not (tmp_path / "build_small").exists()  # nothing was searched


SUBCLASS_SCRIPT = """
import json, os
import keras
import keras_tuner
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
import automl

digits = load_digits()
x = (digits.images / 16.0).astype("float32")
y = digits.target
train = tf.data.Dataset.from_tensor_slices((x[:1200], y[:1200])).batch(64)
val = tf.data.Dataset.from_tensor_slices((x[1200:], y[1200:])).batch(64)

class Seen(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        with open(os.environ["SEEN"], "a") as f:
            f.write("callback\\n")

class MyHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential([keras.layers.Flatten(),
                                  keras.layers.Dense(hp.Int("units", 8, 16, step=8),
                                                     activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, **kwargs):
        with open(os.environ["SEEN"], "a") as f:
            f.write(json.dumps({"validation": "validation_data" in kwargs,
                                "callbacks": [type(c).__name__ for c in kwargs["callbacks"]],
                                "class_weight": kwargs.get("class_weight")}) + "\\n")
        return model.fit(*args, **kwargs)

tuner = automl.Tuner(MyHyperModel(), objective=keras_tuner.Objective("val_loss", "min"),
                     max_trials=2, workers=2, study="subclass", pruner="none")
tuner.search(train, validation_data=val, epochs=2, batch_size=16, callbacks=[Seen()],
             class_weight={i: 1.0 for i in range(10)})
print("BEST", tuner.get_best_hyperparameters(1)[0].values)
"""


def test_a_hypermodel_subclass_with_fit_tf_data_callbacks_and_fit_arguments(
    tmp_path: Path,
) -> None:
    script = tmp_path / "tune.py"  # a script without `if __name__ == "__main__":`
    script.write_text(textwrap.dedent(SUBCLASS_SCRIPT))
    seen = tmp_path / "seen.txt"
    os.environ["SEEN"] = str(seen)
    try:
        result = run_script(script, timeout=600)
    finally:
        del os.environ["SEEN"]
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "BEST {'units':" in result.stdout
    lines = seen.read_text().splitlines()
    import json

    fits = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(fits) == 2 and lines.count("callback") == 2
    for fit in fits:
        assert fit["validation"] and "Seen" in fit["callbacks"]
        assert fit["class_weight"] == {str(i): 1.0 for i in range(10)}
    space = next((tmp_path / "runs" / "subclass").glob("hypermodel-*.py")).read_text()
    assert "BATCH_SIZE = 16" in space and "OBJECTIVE = ('val_loss', 'minimize')" in space
    # The tf.data pipelines were written once into the study's folder; the workers' dataset
    # refers to those files instead of holding copies of the pixels.
    (written,) = (tmp_path / "runs" / "subclass").glob("tfdata-*")
    assert (written / "train.bin").stat().st_size == 1080 * 8 * 8 * 4  # 90 % of 1200 rows
    assert (written / "val.bin").stat().st_size == (1797 - 1200) * 8 * 8 * 4
    with np.load(tmp_path / "runs" / "subclass" / "dataset.npz") as saved:
        assert "file_train" in saved.files and "x_train" not in saved.files


INTERRUPT_SCRIPT = """
import time
import keras
import numpy as np
from sklearn.datasets import load_digits
import automl

digits = load_digits()
x, y = digits.images / 16.0, digits.target

def build(hp):
    model = keras.Sequential([keras.layers.Flatten(),
                              keras.layers.Dense(hp.Int("units", 8, 16), activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

class Slow(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        time.sleep(1.0)

tuner = automl.Tuner(build, max_trials=50, workers=2, study="stopped", pruner="none",
                     patience=None)
tuner.search(x, y, epochs=20, callbacks=[Slow()])
print("RETURNED", tuner.last_search)
"""


def test_keyboard_interrupt_stops_cleanly_and_returns_control(tmp_path: Path) -> None:
    script = tmp_path / "tune.py"
    script.write_text(textwrap.dedent(INTERRUPT_SCRIPT))
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    database = tmp_path / "runs" / "automl.db"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and _running(database) < 2:
            time.sleep(0.5)
        assert _running(database) == 2, "no trial started"
        time.sleep(2)  # mid-epoch
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, out[-2000:] + err[-3000:]
    assert "Interrupted: running trials were recorded and re-queued" in out
    assert "RETURNED None" in out
    assert _running(database) == 0
    with sqlite3.connect(database) as connection:
        states = dict(connection.execute("SELECT state, COUNT(*) FROM trials GROUP BY state"))
    assert states.get("WAITING", 0) >= 2  # the interrupted trials, re-queued


def _running(database: Path) -> int:
    if not database.is_file():
        return 0
    try:
        with sqlite3.connect(database) as connection:
            return int(
                connection.execute(
                    "SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'"
                ).fetchone()[0]
            )
    except sqlite3.OperationalError:
        return 0


def test_image_classifier_searches_the_flagship_space_and_predicts_labels(
    tmp_path: Path,
) -> None:
    from automl import ImageClassifier

    x, y = _digits()
    pixels = (x * 255).astype(np.uint8)
    names = np.array(list("abcdefghij"))[y]  # any labels come back as given
    classifier = ImageClassifier(
        max_trials=2, max_epochs=2, workers=2, directory=tmp_path, project_name="auto"
    )
    classifier.fit(pixels[:1500], names[:1500])
    predicted = classifier.predict(pixels[1500:])
    assert predicted.shape == (297, 1) and set(predicted.ravel()) <= set("abcdefghij")
    _loss, accuracy = classifier.evaluate(pixels[1500:], names[1500:])
    assert accuracy == pytest.approx((predicted.ravel() == names[1500:]).mean(), abs=1e-6)
    assert classifier.export_model() is classifier.model
    # The flagship space is the package's copy of spaces/cnn.py, stored as for the CLI.
    record = classifier._record()
    assert Path(record.space.path).name == "cnn.py"
    assert record.space.sha256 == _sha256(REPO / "spaces" / "cnn.py")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
