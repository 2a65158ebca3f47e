"""The model zoo: every block builds and trains at 8×8×1 and 32×32×3; backbones and weights."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from automl.data import load_dataset  # noqa: E402
from automl.errors import SpaceError  # noqa: E402
from automl.spaces import zoo  # noqa: E402

SHAPES = [(8, 8, 1), (32, 32, 3)]


def _data(shape: tuple[int, int, int], n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    if shape == (8, 8, 1):
        digits = load_dataset("digits")
        return digits.train.x[:n].astype("float32"), digits.train.y[:n]
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, *shape)).astype("float32"), rng.integers(0, 10, n)


def _train_one_step(
    body: Callable[[Any], Any],
    shape: tuple[int, int, int],
    optimizer: Any = None,
    eager: bool = False,
) -> Any:
    keras.backend.clear_session()
    inputs = keras.Input(shape)
    outputs = zoo.classifier_head(body(inputs), 10, dense_units=8, dropout=0.1, l2=1e-4)
    model = keras.Model(inputs, outputs)
    zoo.compile_classifier(model, optimizer or zoo.make_optimizer("adam", 1e-3), num_classes=10)
    if eager:
        model.run_eagerly = True
    x, y = _data(shape)
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    return model


BLOCKS: dict[str, Callable[[Any], Any]] = {
    "conv_stack": lambda x: zoo.conv_stack(
        zoo.rescale(x), depth=4, filters=4, l2=1e-4, dropout=0.1
    ),
    "conv_fixed_filters": lambda x: zoo.conv_stack(
        zoo.rescale(x), depth=2, filters=4, double_filters=False, kernel_size=5
    ),
    "small_resnet": lambda x: zoo.small_resnet(
        zoo.rescale(x), stages=3, blocks_per_stage=2, filters=4, l2=1e-4
    ),
    "augmentation": lambda x: zoo.conv_stack(
        zoo.rescale(
            zoo.augmentation(
                x, flip="horizontal", rotation=0.1, translation=0.1, zoom=0.1, contrast=0.2, seed=1
            )
        ),
        depth=1,
        filters=4,
    ),
}


@pytest.mark.parametrize("shape", SHAPES, ids=["8x8x1", "32x32x3"])
@pytest.mark.parametrize("block", list(BLOCKS))
def test_block_builds_and_trains_one_step(
    block: str, shape: tuple[int, int, int], tf: object
) -> None:
    _train_one_step(BLOCKS[block], shape)


# What make_optimizer promises for each name: the class and the settings it passes (None: the
# optimizer does not take that setting).
OPTIMIZER_SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "adam": ("Adam", {"weight_decay": None, "momentum": None}),
    "adamw": ("AdamW", {"weight_decay": 1e-4, "momentum": None}),
    "sgd": ("SGD", {"weight_decay": None, "momentum": 0.9, "nesterov": True}),
    "rmsprop": ("RMSprop", {"weight_decay": None, "momentum": 0.9}),
}


def test_every_optimizer_has_its_expected_settings() -> None:
    assert set(OPTIMIZER_SETTINGS) == set(zoo.OPTIMIZERS)


@pytest.mark.parametrize("shape", SHAPES, ids=["8x8x1", "32x32x3"])
@pytest.mark.parametrize("name", zoo.OPTIMIZERS)
def test_optimizers_have_their_settings_and_train(
    name: str, shape: tuple[int, int, int], tf: object
) -> None:
    optimizer = zoo.make_optimizer(name, 1e-3)
    class_name, settings = OPTIMIZER_SETTINGS[name]
    assert type(optimizer) is getattr(keras.optimizers, class_name)
    config = optimizer.get_config()
    assert config["learning_rate"] == pytest.approx(1e-3)
    assert {key: config.get(key) for key in settings} == pytest.approx(settings)
    _train_one_step(lambda x: zoo.conv_stack(zoo.rescale(x), depth=1, filters=4), shape, optimizer)


def test_optimizer_settings_are_passed_through(tf: object) -> None:
    assert zoo.make_optimizer("adamw", 0.1, weight_decay=0.05).get_config()["weight_decay"] == (
        pytest.approx(0.05)
    )
    for name in ("sgd", "rmsprop"):
        config = zoo.make_optimizer(name, 0.1, momentum=0.5).get_config()
        assert config["momentum"] == pytest.approx(0.5)
        assert config["learning_rate"] == pytest.approx(0.1)
    schedule = zoo.learning_rate_schedule("cosine", 0.1, epochs=3, steps_per_epoch=4)
    rate = zoo.make_optimizer("sgd", schedule).get_config()["learning_rate"]
    assert rate["class_name"] == "CosineDecay"
    assert rate["config"]["warmup_target"] == pytest.approx(0.1)


def test_unknown_names_are_space_errors(tf: object) -> None:
    with pytest.raises(SpaceError, match=r"unknown optimizer 'adagrad'; use one of adam, adamw"):
        zoo.make_optimizer("adagrad", 0.1)
    with pytest.raises(SpaceError, match=r"unknown learning-rate schedule 'step'; use one of"):
        zoo.learning_rate_schedule("step", 0.1, epochs=3, steps_per_epoch=4)


@pytest.mark.parametrize("shape", SHAPES, ids=["8x8x1", "32x32x3"])
@pytest.mark.parametrize("schedule", zoo.SCHEDULES)
def test_schedules_train(schedule: str, shape: tuple[int, int, int], tf: object) -> None:
    rate = zoo.learning_rate_schedule(schedule, 1e-2, epochs=3, steps_per_epoch=4)
    _train_one_step(
        lambda x: zoo.conv_stack(zoo.rescale(x), depth=1, filters=4),
        shape,
        zoo.make_optimizer("sgd", rate),
    )


def test_cosine_schedule_warms_up_then_decays(tf: object) -> None:
    schedule = zoo.learning_rate_schedule("cosine", 0.1, epochs=10, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 10, 50, 99)]
    assert rates[0] == pytest.approx(0.01)
    assert rates[1] == pytest.approx(0.1, rel=1e-3)
    assert rates[1] > rates[2] > rates[3]


def test_augmentation_is_identity_at_inference(tf: object) -> None:
    inputs = keras.Input((8, 8, 1))
    outputs = zoo.augmentation(inputs, flip="horizontal", rotation=0.2, zoom=0.2, contrast=0.3)
    model = keras.Model(inputs, outputs)
    x, _ = _data((8, 8, 1), 4)
    assert np.allclose(model(x, training=False), x)
    assert not np.allclose(model(x, training=True), x)
    assert all(layer.name.startswith(zoo.AUGMENTATION_PREFIX) for layer in model.layers[1:])


# -- keras.applications backbones -----------------------------------------------------------------
# Tracing these large graphs costs 30–60 s each on a CPU, so the fast tests train them eagerly;
# `pytest -m slow` trains them through the trial runner in graph mode.


@pytest.mark.parametrize("shape", SHAPES, ids=["digits-8x8x1", "32x32x3"])
@pytest.mark.parametrize("name", ["mobilenetv2", "efficientnetb0", "resnet50", "vgg16"])
def test_backbone_trains_one_epoch(name: str, shape: tuple[int, int, int], tf: object) -> None:
    model = _train_one_step(lambda x: zoo.application_backbone(x, name)[0], shape, eager=True)
    assert model.input_shape == (None, *shape)  # upsizing and channels happen inside


def _write_legacy_h5(model: Any, path: Path) -> None:
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


def test_imagenet_weights_come_from_the_keras_cache(tmp_path: Path, tf: object) -> None:
    """The 'imagenet' path, with a weights file this test writes into the Keras cache.

    Keras reads KERAS_HOME when it is imported, so the build runs in a fresh process, as a user's
    search would.
    """
    reference = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35
    )
    cache_file = (
        tmp_path / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    )
    _write_legacy_h5(reference, cache_file)
    np.save(tmp_path / "expected.npy", reference.weights[-1].numpy())
    script = (
        "import sys, numpy as np, keras\n"
        "from automl.spaces import zoo\n"
        "_, base = zoo.application_backbone(keras.Input((8, 8, 1)), 'mobilenetv2',"
        " weights='imagenet', trainable=False, alpha=0.35)\n"
        "expected = np.load(sys.argv[1])\n"
        "assert np.array_equal(base.weights[-1].numpy(), expected), 'weights differ'\n"
        "assert not base.trainable\n"
        "print('LOADED')\n"
    )
    env = {
        **os.environ,
        "KERAS_HOME": str(tmp_path),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "https_proxy": "http://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "expected.npy")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "LOADED" in result.stdout, result.stderr[-2000:]


def test_local_weights_file(tmp_path: Path, tf: object) -> None:
    reference = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16_notop.weights.h5"
    reference.save_weights(path)
    _, base = zoo.application_backbone(keras.Input((32, 32, 3)), "vgg16", weights=str(path))
    assert np.array_equal(base.weights[0].numpy(), reference.weights[0].numpy())


def test_imagenet_offline_names_the_file(monkeypatch: pytest.MonkeyPatch, tf: object) -> None:
    from automl.data.sources import keras_cache_dir

    for variable in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    with pytest.raises(SpaceError, match=r"imagenet weights are not in the Keras cache") as caught:
        zoo.application_backbone(keras.Input((32, 32, 3)), "vgg16", weights="imagenet")
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in str(caught.value)
    assert str(keras_cache_dir().parent / "models") in str(caught.value)


def test_missing_weights_file_and_unknown_backbone(tf: object) -> None:
    with pytest.raises(SpaceError, match=r"weights file nope\.h5 does not exist"):
        zoo.application_backbone(keras.Input((32, 32, 3)), "vgg16", weights="nope.h5")
    with pytest.raises(SpaceError, match="unknown backbone 'alexnet'"):
        zoo.application_backbone(keras.Input((32, 32, 3)), "alexnet")


def test_caffe_preprocessing_flips_channels_and_subtracts_the_mean(tf: object) -> None:
    inputs = keras.Input((32, 32, 3))
    features, _ = zoo.application_backbone(inputs, "vgg16")
    model = keras.Model(inputs, features)
    preprocess = model.get_layer("vgg16_preprocess")
    probe = keras.Model(inputs, preprocess.output)
    pixel = np.zeros((1, 32, 32, 3), dtype="float32")
    pixel[..., 0] = 200.0  # red
    out = probe(pixel).numpy()[0, 0, 0]
    assert out == pytest.approx([-103.939, -116.779, 200.0 - 123.68], abs=1e-3)


def test_fine_tune_unfreezes_the_top_layers_but_not_batchnorm(tf: object) -> None:
    base = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2D(4, 3),
            keras.layers.Conv2D(4, 3),
        ]
    )
    base.trainable = False
    plan = zoo.FineTune(base, layers=3)
    assert plan.unfreeze() == 2
    assert [layer.trainable for layer in base.layers] == [False, False, True, True]
    assert plan.switch_epoch(10) == 5 and plan.switch_epoch(2) == 1


def _compiled_model() -> Any:
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, zoo.classifier_head(inputs, 3))
    return zoo.compile_classifier(model, zoo.make_optimizer("adam", 1e-3), num_classes=3)


def test_plan_helpers_return_new_plans_and_leave_the_model_alone(tf: object) -> None:
    model = _compiled_model()
    base = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3)])
    before = set(vars(model))
    marker = keras.callbacks.Callback()
    with_callback = zoo.add_callbacks(model, marker)
    plateau = zoo.reduce_on_plateau(with_callback, factor=0.25, patience=3)
    tuned = zoo.fine_tune(model, base, layers=2, at_fraction=0.25, learning_rate_factor=0.5)
    assert set(vars(model)) == before  # nothing attached to the model
    assert with_callback == zoo.TrainingPlan(model, (marker,))  # one plan, not changed since
    assert plateau.model is model and plateau.callbacks[0] is marker
    reduce = plateau.callbacks[1]
    assert isinstance(reduce, keras.callbacks.ReduceLROnPlateau)
    assert (reduce.monitor, reduce.factor, reduce.patience) == ("val_loss", 0.25, 3)
    assert tuned == zoo.TrainingPlan(model, (), zoo.FineTune(base, 2, 0.25, 0.5))
    assert zoo.fine_tune(plateau, base, layers=2).callbacks == plateau.callbacks
    assert zoo.fine_tune(model, base, layers=0) == zoo.TrainingPlan(model)
