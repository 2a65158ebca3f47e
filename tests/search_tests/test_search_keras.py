"""`automl search` with real Keras workers, as a user runs it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..conftest import REPO
from ..test_trial_cli import automl

FAULTY = """
import keras
import tensorflow as tf

OBJECTIVE = "val_accuracy"


def build(hp, info):
    mode = hp.Choice("mode", ["ok", "nan", "oom"])
    inputs = keras.Input(info.input_shape)
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    init = keras.initializers.Constant(1e38) if mode == "nan" else "glorot_uniform"
    outputs = keras.layers.Dense(info.num_classes, activation="softmax",
                                 kernel_initializer=init)(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(hp, model, *args, **kwargs):
    if hp["mode"] == "oom":  # what a GPU out of memory looks like to Keras
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
    return model.fit(*args, **kwargs)
"""


def test_search_cnn_with_two_workers(tmp_path: Path) -> None:
    result = automl(
        "search",
        str(REPO / "spaces" / "cnn.py"),
        "--trials",
        "4",
        "--epochs",
        "2",
        "--workers",
        "2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "New study 'cnn': target 4 finished trials" in out
    assert "2 worker slot(s): cpu0, cpu1" in out
    assert len(re.findall(r"^\[\d/4\] trial \d", out, re.MULTILINE)) == 4
    assert "Best trial" in out and "automl show cnn" in out
    assert re.search(r"Worker utilisation: cpu0 \d+%, cpu1 \d+%", out)
    runs = tmp_path / "runs"
    assert (runs / "automl.db").is_file() and (runs / "cnn" / "dataset.npz").is_file()
    assert len(list((runs / "cnn" / "histories").glob("trial-*.json"))) == 4
    assert 1 <= len(list((runs / "cnn" / "checkpoints").glob("*.keras"))) <= 3
    show = automl("show", "cnn", cwd=tmp_path)
    assert show.returncode == 0
    assert len(re.findall(r"^│ +\d+ │ +\d+ │ (complete|pruned)", show.stdout, re.MULTILINE)) == 4


def test_nan_and_out_of_memory_fail_their_trials_only(tmp_path: Path) -> None:
    (tmp_path / "faulty.py").write_text(FAULTY)
    result = automl(
        "search",
        "faulty.py",
        "--trials",
        "3",
        "--epochs",
        "2",
        "--sampler",
        "grid",
        "--workers",
        "1",
        "--max-failures",
        "5",
        cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert "loss became NaN at epoch 1" in out
    assert "out of memory: OOM when allocating tensor" in out
    assert "Replacing worker cpu0 (out of memory)" in out
    assert "Best trial" in out and "mode=ok" in out
    assert "Stopped early: the grid sampler has tried every combination" in out


def test_search_without_a_space_file_uses_the_flagship_on_a_folder(tmp_path: Path) -> None:
    from ..images import make_folder

    make_folder(tmp_path / "photos", per_class=8)
    result = automl(
        "search", "--data", "photos/", "--trials", "1", "--epochs", "1", "--workers", "1",
        "--no-retrain", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Study 'photos': 1 of 1 finished" in result.stdout  # named after its data
    from automl.storage.store import StudyStore

    record = StudyStore(f"sqlite:///{tmp_path / 'runs' / 'automl.db'}").record("photos")
    assert Path(record.space.path) == (REPO / "spaces" / "cnn.py").resolve()
    assert record.data.source == "photos/"


@pytest.mark.parametrize("repeats", ["1", "2"])
def test_tensorboard_gets_every_trials_scalars_and_hparams(tmp_path: Path, repeats: str) -> None:
    """With --repeats, the scalars are the mean curve the objective follows."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    from ..deploy_tests.test_deploy import PLAIN

    (tmp_path / "plain.py").write_text(PLAIN)
    result = automl(
        "search", "plain.py", "--trials", "2", "--epochs", "2", "--workers", "1",
        "--pruner", "none", "--no-retrain", "--quiet", "--tensorboard", "tb",
        "--repeats", repeats, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    runs = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "tb"))
    runs.Reload()
    names = set(runs.Runs())
    assert {"trial-0", "trial-0/train", "trial-0/validation", "trial-1/validation"} <= names
    # Per-epoch scalars (Keras writes them as tensors), one point per epoch.
    validation = runs.GetAccumulator("trial-1/validation")
    points = validation.Tensors("epoch_accuracy")
    assert [point.step for point in points] == [0, 1]
    if repeats == "2":
        from automl.storage.store import StudyStore

        record = StudyStore(f"sqlite:///{tmp_path / 'runs' / 'automl.db'}").record("plain")
        assert record.metric == "val_accuracy"
        curve = [record.trials[1].intermediate[epoch] for epoch in (1, 2)]
        written = [float(tf_value(point)) for point in points]
        assert written == pytest.approx(curve)  # the mean of the two models, as stored
    # The HParams session of each trial: its parameters, as the HParams tab reads them.
    from tensorboard.plugins.hparams import plugin_data_pb2

    for trial in ("trial-0", "trial-1"):
        content = runs.PluginRunToTagToContent("hparams")[trial]
        start = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]
        ).session_start_info
        assert set(start.hparams) == {"rotation", "filters"} and start.group_name == trial


def tf_value(point: object) -> float:
    """The number in a TensorBoard tensor event."""
    from tensorboard.util import tensor_util

    return float(tensor_util.make_ndarray(point.tensor_proto))  # type: ignore[attr-defined]
