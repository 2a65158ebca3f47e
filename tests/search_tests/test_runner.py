"""The single-trial runner: real (tiny) training runs on digits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest

from automl.data import Dataset, Split, load_dataset
from automl.errors import SpaceError
from automl.search.runner import FailureKind, ObjectiveMissing, Outcome, run_trial
from automl.search.training import TrialTraining
from automl.spaces import FixedAnswers, HyperParameters, Objective, load_space

from ..conftest import SPACES

keras = pytest.importorskip("keras")

TINY = """
import keras

OBJECTIVE = "val_accuracy"


def build(hp, info):
    inputs = keras.Input(info.input_shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hp.Int("units", 8, 32, default=16), activation="relu")(x)
    outputs = keras.layers.Dense(info.num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-1, sampling="log", default=1e-2)),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    hp.Choice("batch_size", [64], default=64)
    return model
"""


FINE_TUNE = """
import keras
from automl.spaces import zoo

RECORD = []  # per epoch: kernel sums of the base's two layers
WATCHED = []  # epochs seen by a callback that watches a validation metric


class Recorder(keras.callbacks.Callback):
    def __init__(self, base):
        super().__init__()
        self.base = base

    def on_epoch_end(self, epoch, logs=None):
        kernels = [self.base.get_layer(n).kernel for n in ("low", "top")]
        RECORD.append([float(k.numpy().sum()) for k in kernels])


class ValWatcher(keras.callbacks.Callback):
    monitor = "val_loss"

    def on_epoch_end(self, epoch, logs=None):
        WATCHED.append(epoch)


def build(hp, info):
    inputs = keras.Input(info.input_shape)
    base = keras.Sequential([keras.Input(info.input_shape), keras.layers.Rescaling(1 / 255),
                             keras.layers.Conv2D(4, 3, name="low"),
                             keras.layers.Conv2D(4, 3, name="top")], name="base")
    base.trainable = False
    x = keras.layers.Flatten()(base(inputs, training=False))
    model = keras.Model(inputs, keras.layers.Dense(info.num_classes, activation="softmax")(x))
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    plan = zoo.add_callbacks(model, Recorder(base), ValWatcher())
    return zoo.fine_tune(plan, base, layers=1, at_fraction=0.5, learning_rate_factor=0.5)
"""


def _assert_two_phases(record: list[list[float]]) -> None:
    low, top = zip(*record, strict=True)
    assert len(low) == 4  # both phases share the budget
    assert len(set(low)) == 1  # below the fine-tuned layers: frozen throughout
    assert top[0] == top[1]  # phase 1: the whole base is frozen
    assert top[1] != top[2] != top[3]  # phase 2: the top layer trains


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_default_cnn_trains_and_checkpoints_the_best_epoch(
    digits: Dataset, tmp_path: Path, tf: object
) -> None:
    space = load_space(SPACES / "cnn.py")
    seen: list[tuple[int, Mapping[str, float]]] = []

    def hook(epoch: int, metrics: Mapping[str, float]) -> bool:
        seen.append((epoch, dict(metrics)))
        return True

    checkpoint = tmp_path / "best.keras"
    result = run_trial(
        space,
        digits,
        FixedAnswers({}, missing="default"),
        epochs=2,
        seed=1,
        on_epoch=hook,
        checkpoint=checkpoint,
    )
    assert result.outcome is Outcome.COMPLETE, result.failure
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert result.epochs_run == 2 and result.best_epoch in (1, 2)
    best = max(h["val_accuracy"] for h in result.history)
    assert result.best_value == pytest.approx(best)
    assert result.params_count == 23914
    assert result.params["backbone"] == "conv"
    assert {"build", "train", "total", "first_epoch"} <= set(result.timings)
    assert result.checkpoint == checkpoint and checkpoint.exists()
    loaded = keras.saving.load_model(checkpoint, safe_mode=True)
    assert int(loaded.optimizer.iterations.numpy()) > 0  # the optimizer state is saved too
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temporary file


def test_hook_returning_false_prunes(
    digits: Dataset, write_space: Callable[..., Path], tf: object
) -> None:
    space = load_space(write_space(TINY))
    result = run_trial(
        space,
        digits,
        FixedAnswers({}, missing="default"),
        epochs=5,
        on_epoch=lambda epoch, _: epoch < 2,
    )
    assert result.outcome is Outcome.PRUNED
    assert result.epochs_run == 2


def test_early_stopping(digits: Dataset, write_space: Callable[..., Path], tf: object) -> None:
    # A learning rate of ~0 never improves after epoch 1: patience 2 stops at epoch 3.
    space = load_space(write_space(TINY.replace("1e-3, 1e-1", "1e-9, 1e-1")))
    result = run_trial(
        space,
        digits,
        FixedAnswers({"lr": 1e-9}, missing="default"),
        epochs=10,
        patience=2,
        objective=Objective("val_loss", "minimize"),
    )
    assert result.outcome is Outcome.COMPLETE
    assert result.epochs_run < 10


def test_same_seed_same_result(
    digits: Dataset, write_space: Callable[..., Path], tf: object
) -> None:
    space = load_space(write_space(TINY))
    runs = [
        run_trial(space, digits, FixedAnswers({}, missing="default"), epochs=2, seed=7)
        for _ in range(2)
    ]
    assert runs[0].history[0]["loss"] == pytest.approx(runs[1].history[0]["loss"], rel=1e-4)


def test_nan_loss_fails_the_trial(
    digits: Dataset, write_space: Callable[..., Path], tf: object
) -> None:
    text = TINY.replace(
        'activation="softmax")(x)',
        'activation="softmax", kernel_initializer=keras.initializers.Constant(1e38))(x)',
    )
    result = run_trial(
        load_space(write_space(text)), digits, FixedAnswers({}, missing="default"), epochs=3
    )
    assert result.outcome is Outcome.FAILED
    assert result.failure_kind is FailureKind.NAN
    assert result.failure == "loss became NaN at epoch 1"
    assert result.best_value is None


def test_exception_in_build_fails_the_trial(
    digits: Dataset, write_space: Callable[..., Path], tf: object
) -> None:
    text = TINY.replace(
        "    inputs = keras.Input",
        "    if hp.Int('units', 8, 32, default=16) > 20:\n"
        "        raise RuntimeError('too wide')\n    inputs = keras.Input",
    )
    result = run_trial(
        load_space(write_space(text)),
        digits,
        FixedAnswers({"units": 30}, missing="default"),
        epochs=1,
    )
    assert result.outcome is Outcome.FAILED and result.failure_kind is FailureKind.BUILD
    assert "space.py:8: build() raised RuntimeError: too wide" in (result.failure or "")


def test_out_of_memory_is_classified(
    digits: Dataset, write_space: Callable[..., Path], tf: object
) -> None:
    text = TINY + (
        "\n\ndef fit(hp, model, *args, **kwargs):\n"
        "    import tensorflow as tf\n"
        "    raise tf.errors.ResourceExhaustedError(None, None, 'OOM when allocating tensor')\n"
    )
    result = run_trial(
        load_space(write_space(text)), digits, FixedAnswers({}, missing="default"), epochs=1
    )
    assert result.outcome is Outcome.FAILED and result.failure_kind is FailureKind.OOM
    assert "out of memory" in (result.failure or "")


@pytest.mark.parametrize(
    "raised",
    [
        "tf.errors.ResourceExhaustedError(None, None, 'OOM when allocating tensor')",
        "MemoryError()",
    ],
)
def test_out_of_memory_while_building_is_classified_as_oom(
    digits: Dataset, write_space: Callable[..., Path], tf: object, raised: str
) -> None:
    # A model too large for the device fails in build(): OOM (the worker is replaced), not a
    # build error of the configuration.
    text = TINY.replace(
        "def build(hp, info):\n",
        f"def build(hp, info):\n    import tensorflow as tf\n    raise {raised}\n",
    )
    result = run_trial(
        load_space(write_space(text)), digits, FixedAnswers({}, missing="default"), epochs=1
    )
    assert result.outcome is Outcome.FAILED and result.failure_kind is FailureKind.OOM
    assert "out of memory" in (result.failure or "")


def test_missing_objective_metric_is_fatal(
    digits: Dataset, write_space: Callable[..., Path], tf: object
) -> None:
    result = run_trial(
        load_space(write_space(TINY)),
        digits,
        FixedAnswers({}, missing="default"),
        epochs=1,
        objective=Objective("val_auc", "maximize"),
    )
    assert result.failure_kind is FailureKind.FATAL
    assert "the objective 'val_auc' is not among the metrics" in (result.failure or "")
    assert issubclass(ObjectiveMissing, SpaceError)  # a mistake in the space, exit code 2


def test_fine_tuning_runs_two_phases(
    digits: Dataset, write_space: Callable[..., Path], tf: object
) -> None:
    space = load_space(write_space(FINE_TUNE))
    result = run_trial(
        space, digits, FixedAnswers({}, missing="default"), epochs=4, checkpoint=None, patience=None
    )
    assert result.outcome is Outcome.COMPLETE, result.failure
    assert result.epochs_run == 4
    _assert_two_phases(space.module.RECORD)
    assert space.module.WATCHED == [0, 1, 2, 3]  # a trial has validation data


def test_training_without_validation_follows_the_plan(
    digits: Dataset, write_space: Callable[..., Path], tf: object
) -> None:
    """Retraining's path: train + val, no validation, the plan's phases as in a trial, and
    the plan's callbacks that watch a val_* metric left out."""
    space = load_space(write_space(FINE_TUNE))
    full = Split(
        np.concatenate([digits.train.x, digits.val.x]),
        np.concatenate([digits.train.y, digits.val.y]),
    )
    hp = HyperParameters(FixedAnswers({}, missing="default"))
    training = TrialTraining(space, digits, hp, train=full, val=None, epochs=4, seed=3)
    plan = training.build()
    logs: list[dict[str, float]] = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda _, epoch_logs: logs.append(epoch_logs)
    )
    training.fit(plan, callbacks=[recorder])
    _assert_two_phases(space.module.RECORD)
    assert space.module.WATCHED == []
    assert len(logs) == 4 and not any(key.startswith("val_") for key in logs[-1])
    assert float(plan.model.optimizer.learning_rate.numpy()) == pytest.approx(0.005)


def test_checkpointed_model_predicts_like_the_trained_one(
    digits: Dataset, write_space: Callable[..., Path], tmp_path: Path, tf: object
) -> None:
    space = load_space(write_space(TINY))
    result = run_trial(
        space,
        digits,
        FixedAnswers({}, missing="default"),
        epochs=2,
        checkpoint=tmp_path / "m.keras",
        patience=None,
    )
    model = keras.saving.load_model(result.checkpoint, safe_mode=True)
    accuracy = float(
        np.mean(
            np.argmax(model.predict(digits.val.x.astype("float32"), verbose=0), axis=1)
            == digits.val.y
        )
    )
    assert accuracy == pytest.approx(result.best_value, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(8, 8, 1), (32, 32, 3)], ids=["digits", "32x32x3"])
@pytest.mark.parametrize("backbone", ["mobilenetv2", "efficientnetb0", "resnet50", "vgg16"])
def test_application_backbone_trial_in_graph_mode(
    backbone: str,
    shape: tuple[int, int, int],
    digits: Dataset,
    write_space: Callable[..., Path],
    tf: object,
) -> None:
    """Nightly (`pytest -m slow`): each backbone trains one epoch through the runner."""
    data = digits
    if shape != (8, 8, 1):
        rng = np.random.default_rng(0)
        split = Split(rng.integers(0, 256, (64, *shape), dtype=np.uint8), np.arange(64) % 4)
        data = Dataset("rgb", split, split, split, ("a", "b", "c", "d"))
    text = f"""
    import keras
    from automl.spaces import zoo


    def build(hp, info):
        inputs = keras.Input(info.input_shape)
        x, _ = zoo.application_backbone(inputs, "{backbone}")
        model = keras.Model(inputs, zoo.classifier_head(x, info.num_classes))
        return zoo.compile_classifier(model, zoo.make_optimizer("adam", 1e-3),
                                      num_classes=info.num_classes)
    """
    result = run_trial(load_space(write_space(text)), data, FixedAnswers({}), epochs=1)
    assert result.outcome is Outcome.COMPLETE, result.failure


def test_a_killed_trial_resumes_from_its_saved_epoch_with_the_optimizer_state(
    digits: Dataset,
    write_space: Callable[..., Path],
    tf: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from automl.search import resume

    monkeypatch.setattr(resume, "MAX_OVERHEAD", 1e9)  # save after every epoch
    space = load_space(write_space(TINY))
    base = tmp_path / "resume" / "trial-0"

    def killed_at_epoch_3(epoch: int, metrics: Mapping[str, float]) -> bool:
        if epoch == 3:
            raise RuntimeError("the worker was killed")
        return True

    first = run_trial(
        space, digits, FixedAnswers({}, missing="default"), epochs=5,
        on_epoch=killed_at_epoch_3, resume=base,
    )  # fmt: skip
    point = resume.read_point(base)
    assert point is not None and point.epoch == 2 and point.model is not None
    saved = keras.saving.load_model(point.model)
    steps = -(-len(digits.train) // 64)
    assert int(saved.optimizer.iterations.numpy()) == 2 * steps  # optimizer state kept
    seen: list[int] = []
    second = run_trial(
        space, digits, FixedAnswers({}, missing="default"), epochs=5,
        on_epoch=lambda epoch, metrics: seen.append(epoch) is None,
        resume=tmp_path / "resume" / "trial-1", resume_from=point,
    )  # fmt: skip
    assert seen == [3, 4, 5]  # only the epochs left are trained
    assert second.outcome is Outcome.COMPLETE and second.epochs_run == 5
    assert second.history[:2] == first.history[:2]
    assert second.history[2]["accuracy"] >= first.history[0]["accuracy"]  # not from scratch


@pytest.mark.parametrize(
    ("batch", "shape", "expected"),
    [
        (32, (8, 8, 1), 256),  # digits: 256 images are 64 KB
        (32, (192, 256, 3), 56),  # photos: 56 float32 images fit in 32 MiB
        (64, (224, 224, 3), 64),  # never fewer than the training batch
    ],
)
def test_validation_batches_are_large_only_for_small_images(
    batch: int, shape: tuple[int, ...], expected: int
) -> None:
    from automl.search.training import validation_batch_size

    assert validation_batch_size(batch, shape) == expected


def test_training_processes_use_tensorflows_own_cpu_pool() -> None:
    """TensorFlow's BFC pool on the CPU, set before TensorFlow starts (see
    tfruntime.steady_cpu_memory): a worker on 4,000 photos peaked at 0.9 GB with it, 1.9 without."""
    import os
    import subprocess
    import sys

    from ..conftest import REPO

    code = (
        "import os; os.environ.pop('TF_CPU_ALLOCATOR_USE_BFC', None)\n"
        "from automl.tfruntime import import_tensorflow; import_tensorflow()\n"
        "print('BFC', os.environ.get('TF_CPU_ALLOCATOR_USE_BFC'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, check=True
    )
    assert "BFC true" in result.stdout


def test_repeats_train_each_configuration_with_several_seeds_and_report_the_mean(
    digits: Dataset, write_space: Callable[..., Path], tf: object
) -> None:
    from automl.search.runner import REPEAT_SEED_STRIDE

    space = load_space(write_space(TINY))
    answers = FixedAnswers({}, missing="default")
    alone = [
        run_trial(space, digits, answers, epochs=3, seed=seed, patience=None)
        for seed in (7, 7 + REPEAT_SEED_STRIDE)
    ]
    seen: list[float] = []

    def hook(epoch: int, metrics: Mapping[str, float]) -> bool:
        seen.append(metrics["val_loss"])
        return True

    together = run_trial(
        space, digits, answers, epochs=3, seed=7, patience=None, repeats=2, on_epoch=hook
    )
    assert together.outcome is Outcome.COMPLETE and len(together.history) == 3
    for epoch in range(3):
        mean = np.mean([run.history[epoch]["val_loss"] for run in alone])
        assert together.history[epoch]["val_loss"] == pytest.approx(mean, rel=1e-3)
        assert seen[epoch] == together.history[epoch]["val_loss"]  # the pruner sees the mean
    # Pruning on the mean curve stops every repeat at once.
    pruned = run_trial(
        space, digits, answers, epochs=3, seed=7, repeats=2, on_epoch=lambda e, m: False
    )
    assert pruned.outcome is Outcome.PRUNED and len(pruned.history) == 1


def test_a_tie_in_the_objective_goes_to_the_lower_validation_loss() -> None:
    """Validation accuracy on a few hundred images moves in steps of one image: within a trial
    an epoch that ties the best accuracy with a lower validation loss becomes the best epoch,
    and between trials the lower loss at the best epoch ranks first (report, retrain, kept
    checkpoints)."""
    from automl.search.runner import EpochTracker
    from automl.storage.records import StudyRecord, TrialRecord, TrialState

    tracker = EpochTracker(Objective("val_accuracy", "maximize"), None, None)
    for epoch, (accuracy, loss) in enumerate([(0.9, 0.5), (0.9, 0.3), (0.9, 0.4), (0.8, 0.1)]):
        assert tracker.end_epoch(None, epoch + 1, {"val_accuracy": accuracy, "val_loss": loss})
    assert tracker.best_epoch == 2 and tracker.best_value == 0.9
    result = tracker.result({}, {})
    assert result.best_val_loss == 0.3
    by_loss = Objective("val_loss", "minimize")
    tracker = EpochTracker(by_loss, None, None)
    for epoch, loss in enumerate([0.5, 0.5]):
        tracker.end_epoch(None, epoch + 1, {"val_loss": loss})
    assert tracker.best_epoch == 1  # the objective is the loss: a tie stays with the first

    def trial(number: int, loss: float | None) -> TrialRecord:
        return TrialRecord(
            number, TrialState.COMPLETE, 0.9, best_epoch=1, epochs_run=1, best_val_loss=loss
        )

    record = StudyRecord("s", "val_accuracy", "maximize", trials=(trial(0, 0.4), trial(1, 0.2)))
    assert [t.number for t in record.ranked()] == [1, 0]
    assert record.best() is not None and record.best().number == 1  # type: ignore[union-attr]
    unknown = StudyRecord("s", "val_accuracy", "maximize", trials=(trial(0, None), trial(1, 0.5)))
    assert [t.number for t in unknown.ranked()] == [1, 0]  # an unknown loss ranks after
