"""The notebook path as a real notebook: a `.ipynb` whose cell defines `build`, executed by a
real Jupyter kernel (nbclient), searches 4 trials on digits arrays with 2 workers and evaluates
the best model."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ..conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

CELLS = [
    """
    import keras
    from keras import layers
    from sklearn.datasets import load_digits
    import automl

    digits = load_digits()
    x = digits.images.astype("float32") / 16.0  # as Keras Tuner users scale their images
    y = digits.target
    x_train, y_train, x_val, y_val = x[:1400], y[:1400], x[1400:], y[1400:]
    """,
    """
    def build_model(hp):
        model = keras.Sequential()
        model.add(layers.Flatten())
        model.add(layers.Dense(hp.Int("units", min_value=32, max_value=128, step=32),
                               activation="relu"))
        if hp.Boolean("dropout"):
            model.add(layers.Dropout(rate=0.25))
        model.add(layers.Dense(10, activation="softmax"))
        lr = hp.Float("lr", min_value=1e-3, max_value=1e-2, sampling="log")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model
    """,
    """
    tuner = automl.Tuner(build_model, objective="val_accuracy", max_trials=4, workers=2,
                         directory="nb_runs", project_name="notebook")
    tuner.search(x_train, y_train, epochs=3, validation_data=(x_val, y_val))
    """,
    """
    loss, accuracy = tuner.get_best_models(num_models=1)[0].evaluate(x_val, y_val, verbose=0)
    best = tuner.get_best_hyperparameters(1)[0]
    rebuilt = tuner.hypermodel.build(best)
    print("ACCURACY", accuracy, "UNITS", best.get("units"), "FINISHED",
          len([t for t in tuner.study.trials if t.state.is_finished()]))
    """,
]


def test_a_notebook_searches_with_two_workers_and_evaluates_the_best_model(
    tmp_path: Path,
) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c).strip()) for c in CELLS]
    path = tmp_path / "tuning.ipynb"
    nbformat.write(notebook, path)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
    )
    outputs = _execute(notebook, tmp_path)
    text = "".join(outputs)
    assert "4 of 4 finished" in text, text[-3000:]
    line = next(t for t in outputs if "ACCURACY" in t).split()
    accuracy, units, finished = float(line[1]), int(line[3]), int(line[5])
    assert accuracy > 0.5 and units in (32, 64, 96, 128) and finished == 4
    # The study is an ordinary one: the CLI reads it.
    assert (tmp_path / "nb_runs" / "automl.db").is_file()
    assert (tmp_path / "nb_runs" / "notebook" / "dataset.npz").is_file()
    # A new kernel running the same cells (after a crash, say) resumes the finished study.
    again = "".join(_execute(nbformat.read(path, as_version=4), tmp_path))
    assert "Resuming study 'notebook'" in again and "4 of 4 finished" in again, again[-3000:]
    assert "0 s this run" in again


def _execute(notebook: Any, folder: Path) -> list[str]:
    """Run every cell in a new kernel; the printed text, and what rich displays in Jupyter
    (display_data outputs), of each output."""
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    return [
        o.get("text", "") or o.get("data", {}).get("text/plain", "")
        for cell in notebook.cells
        for o in cell.get("outputs", [])
    ]
