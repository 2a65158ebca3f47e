"""--precision and --jit: the policy chosen per device, applied to trials, recorded, and undone
for exports (tested on the CPU for correctness; the speed-up is measured on GPUs, B12)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from automl.data import Dataset, load_dataset
from automl.tfruntime import policy_for

keras = pytest.importorskip("keras")

SPACE = """
import keras
from automl.spaces import zoo


def build(hp, info):
    inputs = keras.Input(info.input_shape)
    x = zoo.rescale(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    outputs = zoo.classifier_head(x, info.num_classes)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""


@pytest.mark.parametrize(
    ("precision", "capabilities", "policy"),
    [
        ("auto", [], "float32"),  # CPU only
        ("auto", [(8, 0), (9, 0)], "mixed_float16"),  # A100, H100: tensor cores
        ("auto", [(8, 0), (6, 1)], "float32"),  # one GPU without: float32 for all
        ("mixed", [], "mixed_float16"),
        ("float32", [(9, 0)], "float32"),
    ],
)
def test_the_policy_follows_the_devices(
    precision: str, capabilities: list[tuple[int, int]], policy: str
) -> None:
    assert policy_for(precision, capabilities) == policy


@pytest.fixture
def mixed(tf: object) -> Iterator[None]:
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_a_mixed_precision_trial_trains_with_a_float32_output(
    mixed: None, digits: Dataset, write_space: Callable[..., Path]
) -> None:
    from automl.search.training import TrialTraining
    from automl.spaces import FixedAnswers, HyperParameters, load_space

    training = TrialTraining(
        load_space(write_space(SPACE)),
        digits,
        HyperParameters(FixedAnswers({}, missing="default")),
        digits.train,
        digits.val,
        epochs=1,
        jit=True,
    )
    plan = training.build()
    model = plan.model
    assert model.get_layer(index=2).compute_dtype == "float16"  # the convolution
    assert model.layers[-1].compute_dtype == "float32"  # the head's output
    training.fit(plan)
    assert model.jit_compile is True
    assert model.predict(digits.test.x[:4].astype("float32"), verbose=0).dtype == np.float32


def test_an_export_of_a_mixed_precision_model_is_float32(
    mixed: None, digits: Dataset, write_space: Callable[..., Path], tmp_path: Path
) -> None:
    from automl.deploy.strip import float32_model, load_trained
    from automl.spaces import DefaultAnswers, HyperParameters, SpaceInfo, load_space

    info = SpaceInfo(digits.input_shape, digits.num_classes, digits.class_names, 100, 1)
    trained = load_space(write_space(SPACE)).build(HyperParameters(DefaultAnswers()), info)
    trained.fit(digits.train.x.astype("float32"), digits.train.y, epochs=1, verbose=0)
    trained.save(tmp_path / "mixed.keras")
    keras.mixed_precision.set_global_policy("float32")  # export runs in a float32 process
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what export loads it with shows the user no warning
        loaded = load_trained(tmp_path / "mixed.keras")
    assert any(layer.compute_dtype == "float16" for layer in loaded.layers)
    exported = float32_model(loaded)
    assert all(layer.compute_dtype == "float32" for layer in exported.layers)
    x = digits.test.x[:16].astype("float32")
    assert np.allclose(exported.predict(x, verbose=0), loaded.predict(x, verbose=0), atol=1e-2)
    exported.save(tmp_path / "export.keras")
    again = keras.saving.load_model(tmp_path / "export.keras", safe_mode=True)
    assert all(layer.compute_dtype == "float32" for layer in again.layers)


def test_precision_and_jit_are_recorded_with_the_study(workdir: Path) -> None:
    from automl.search import SearchConfig, run_search

    from .test_search import fake_gpus

    config = SearchConfig(
        space="space.py", trials=1, executor="function", epochs=2, precision="mixed", jit=True
    )
    record = run_search(config, gpu_probe=fake_gpus(0)).record
    assert record.settings.precision == "mixed" and record.settings.jit is True
