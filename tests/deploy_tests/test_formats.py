"""Every export format keeps one contract (write, load, run like Keras); a format off the Keras
model fails the export with an `ExportError`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from automl.deploy.formats import FORMATS, FormatUnavailable, WriteRequest


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_writes_loads_and_runs_like_keras(
    name: str, tmp_path: Path, tf: object
) -> None:
    """The contract of every export format: the file `write` names is in the folder, and
    `load` then `run` give the Keras model's probabilities (float32, within the tolerance)."""
    import keras

    from automl.data.dataset import Dataset, Split

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (6, 8, 8, 1)).astype("float32")
    split = Split(x, np.arange(6) % 3)
    dataset = Dataset("synthetic", split, split, split, ("a", "b", "c"))
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    form = FORMATS[name]
    try:
        written = form.write(WriteRequest(model, tmp_path, dataset))
    except FormatUnavailable as unavailable:
        pytest.skip(str(unavailable))  # the onnx extra is not installed
    assert form.name == name and written.exact
    assert (tmp_path / written.file.rstrip("/")).exists()
    outputs = form.run(form.load(tmp_path), x)
    assert outputs.shape == (6, 3)
    np.testing.assert_allclose(outputs, model.predict(x, verbose=0), atol=1e-4)


def test_a_format_off_the_keras_model_fails_the_export_with_an_export_error() -> None:
    from automl.deploy.export import check_parity
    from automl.errors import AutoMLError, ExportError

    with pytest.raises(ExportError) as raised:
        check_parity({"keras": 0.0, "onnx": 2e-3, "tflite_int8": 0.5}, ["keras", "onnx"])
    assert isinstance(raised.value, AutoMLError) and raised.value.exit_code == 1
    assert str(raised.value) == (
        "onnx output differs from the Keras model by 2.00e-03 (more than 0.0001); "
        "the export was not written."
    )
    with pytest.raises(ExportError, match=r"savedmodel output differs .* by nan"):
        check_parity({"savedmodel": float("nan")}, ["savedmodel"])
    check_parity({"keras": 1e-5, "tflite_int8": 0.5}, ["keras"])  # quantized: only measured
