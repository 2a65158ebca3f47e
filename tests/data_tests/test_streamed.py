"""A notebook's `tf.data` pipeline, written once into the study's folder a batch at a time and
memory-mapped: rows, labels and held-out splits as given, nothing held whole, a second write of
the same data reusing the files, and bad pipelines refused with the fix."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from automl.data import load_saved_dataset, save_dataset
from automl.data.pipeline import make_pipeline
from automl.data.streamed import save_tf_data
from automl.errors import DataError


def _pairs(n: int, classes: int = 4, shape: tuple[int, ...] = (8, 8)) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    x = rng.random((n, *shape), dtype=np.float32)
    y = (np.arange(n) % classes).astype(np.int64)
    return x, y


def test_given_splits_are_written_row_for_row_and_read_back_by_workers(tmp_path: Path) -> None:
    x, y = _pairs(300)
    train = tf.data.Dataset.from_tensor_slices((x[:200], y[:200])).batch(32)
    val = tf.data.Dataset.from_tensor_slices((x[200:250], y[200:250]))  # not batched
    test = tf.data.Dataset.from_tensor_slices((x[250:], y[250:])).batch(7)
    dataset, one_hot = save_tf_data(
        train, val, test, tmp_path, val_split=0.2, test_split=0.1, scale=False
    )
    assert one_hot is None and dataset.class_names == ("0", "1", "2", "3")
    assert dataset.sizes() == {"train": 200, "val": 50, "test": 50}
    assert isinstance(dataset.train.x, np.memmap) and dataset.input_shape == (8, 8, 1)
    np.testing.assert_array_equal(dataset.train.x[..., 0], x[:200])
    np.testing.assert_array_equal(dataset.val.y, y[200:250])
    np.testing.assert_array_equal(dataset.test.x[..., 0], x[250:])
    # What workers load: the saved dataset refers to the files (float32 rows), not copies.
    saved = tmp_path / "dataset.npz"
    save_dataset(dataset, saved)
    assert saved.stat().st_size < 20_000
    loaded = load_saved_dataset(saved)
    assert isinstance(loaded.val.x, np.memmap) and loaded.val.x.dtype == np.float32
    np.testing.assert_array_equal(loaded.val.x, dataset.val.x)
    assert loaded.sha256 == dataset.sha256
    images, labels = next(iter(make_pipeline(loaded.test, batch_size=64, training=False)))
    np.testing.assert_array_equal(images.numpy()[..., 0], x[250:])
    np.testing.assert_array_equal(labels.numpy(), y[250:])
    # The same data again: the same folder, nothing new written; other data, another folder.
    again, _ = save_tf_data(train, val, test, tmp_path, val_split=0.2, test_split=0.1, scale=False)
    assert again.sha256 == dataset.sha256
    other, _ = save_tf_data(train, test, val, tmp_path, val_split=0.2, test_split=0.1, scale=False)
    assert other.sha256 != dataset.sha256
    assert len(list(tmp_path.glob("tfdata-*"))) == 2 and not list(tmp_path.glob(".tfdata-*"))


def test_missing_splits_are_held_out_per_class_and_one_hot_labels_become_indices(
    tmp_path: Path,
) -> None:
    x, y = _pairs(1000, classes=5, shape=(6, 6, 3))
    uint8 = (x * 255).astype(np.uint8)
    one_hot = np.eye(5, dtype=np.float32)[y]
    train = tf.data.Dataset.from_tensor_slices((uint8, one_hot)).batch(64)
    dataset, classes = save_tf_data(
        train, None, None, tmp_path, val_split=0.2, test_split=0.1, scale=True
    )
    assert classes == 5 and dataset.train.x.dtype == np.uint8  # uint8 stays uint8, unscaled
    sizes = dataset.sizes()
    assert sizes == {"train": 700, "val": 200, "test": 100}
    for split in (dataset.train, dataset.val, dataset.test):
        counts = np.bincount(split.y, minlength=5)
        assert counts.max() - counts.min() <= 1  # every class held out in proportion
    # Every row lands in exactly one split, with its own label.
    rows = {row.tobytes(): label for row, label in zip(uint8, y, strict=True)}
    for split in (dataset.train, dataset.val, dataset.test):
        for row, label in zip(split.x, split.y, strict=True):
            assert rows.pop(row.tobytes()) == label
    assert not rows


def test_float_pixels_in_0_1_are_scaled_for_the_zoo_when_asked(tmp_path: Path) -> None:
    x, y = _pairs(100)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    scaled, _ = save_tf_data(train, None, None, tmp_path, val_split=0.2, test_split=0.1, scale=True)
    kept, _ = save_tf_data(train, None, None, tmp_path, val_split=0.2, test_split=0.1, scale=False)
    assert scaled.sha256 != kept.sha256
    np.testing.assert_allclose(scaled.train.x, kept.train.x * 255.0, rtol=1e-6)


def test_a_pipeline_larger_than_a_batch_is_never_held_whole(tmp_path: Path) -> None:
    """A generator of 64 MB of float32 images: this process holds about one batch at a time."""
    batch, batches, side = 32, 64, 64  # 32 x 64 x 64 x 3 float32 = 1.5 MB a batch, 96 MB in all

    def generate():  # type: ignore[no-untyped-def]
        rng = np.random.default_rng(0)
        for i in range(batches):
            yield (
                rng.random((batch, side, side, 3), dtype=np.float32),
                np.arange(i * batch, (i + 1) * batch) % 3,
            )

    pipeline = tf.data.Dataset.from_generator(
        generate,
        output_signature=(
            tf.TensorSpec((None, side, side, 3), tf.float32),
            tf.TensorSpec((None,), tf.int64),
        ),
    )
    tracemalloc.start()
    try:
        dataset, _ = save_tf_data(
            pipeline, None, None, tmp_path, val_split=0.2, test_split=0.1, scale=True
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(dataset.train) + len(dataset.val) + len(dataset.test) == batch * batches
    whole = batch * batches * side * side * 3 * 4
    assert peak < whole / 8, f"peak {peak / 2**20:.1f} MB of numpy memory for {whole / 2**20} MB"
    assert dataset.train.x.max() > 1.0  # scaled in place, a chunk at a time


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        (tf.data.Dataset.from_tensor_slices(np.zeros((4, 8, 8))), r"\(image, label\) pairs"),
        (
            tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8)), ["a", "b", "c", "d"])),
            "must be numbers",
        ),
        (
            tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8, 2)), [0, 1, 0, 1])),
            r"expected \(height, width\) or \(height, width, 1\|3\)",
        ),
        (
            tf.data.Dataset.from_tensor_slices((np.full((4, 8, 8), np.nan), [0, 1, 0, 1])),
            "NaN",
        ),
        (
            tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8)), [0, 1, 0, 1])).take(0),
            "is empty",
        ),
        (
            tf.data.Dataset.from_generator(
                lambda: iter([(np.zeros((8, 8)), 0), (np.zeros((9, 9)), 1)]),
                output_signature=(tf.TensorSpec(None, tf.float64), tf.TensorSpec((), tf.int64)),
            ),
            r"resize them in the pipeline",
        ),
        (
            tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8)), [0, 0, 0, 0])),
            "holds one class",
        ),
    ],
    ids=["not-pairs", "string-labels", "channels", "nan", "empty", "shapes", "one-class"],
)
def test_a_pipeline_that_cannot_work_is_one_clear_error_and_leaves_nothing(
    tmp_path: Path, pipeline: tf.data.Dataset, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        save_tf_data(pipeline, None, None, tmp_path, val_split=0.2, test_split=0.1, scale=False)
    assert not list(tmp_path.iterdir())
