"""The tf.data input pipeline: every example once per epoch, seeded reshuffles, resize and
channel conversion."""

from __future__ import annotations

import numpy as np

from automl.data.dataset import Split
from automl.data.pipeline import make_pipeline


def split_of(n: int, shape: tuple[int, ...] = (4, 4, 1)) -> Split:
    # Each image is filled with its own index, so batches can be traced back to examples.
    x = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, *shape)).copy()
    return Split(x=x, y=(np.arange(n) % 3).astype(np.int64))


def epoch(dataset: object) -> tuple[list[int], list[int], list[int]]:
    order: list[int] = []
    labels: list[int] = []
    sizes: list[int] = []
    for images, batch_labels in dataset:  # type: ignore[attr-defined]
        pixels = images.numpy()
        assert pixels.dtype == np.float32
        sizes.append(pixels.shape[0])
        order.extend(int(v) for v in pixels[:, 0, 0, 0])
        labels.extend(int(v) for v in batch_labels.numpy())
    return order, labels, sizes


def test_training_pipeline_sees_every_example_once_per_epoch_reshuffled_by_seed() -> None:
    split = split_of(50)
    dataset = make_pipeline(split, batch_size=16, training=True, seed=7)
    first, labels, sizes = epoch(dataset)
    second, _, _ = epoch(dataset)
    assert sizes == [16, 16, 16, 2]
    assert sorted(first) == list(range(50)) and sorted(second) == list(range(50))
    assert labels == [i % 3 for i in first]  # images stay paired with their labels
    assert first != list(range(50)) and first != second  # shuffled, and again each epoch
    again, _, _ = epoch(make_pipeline(split, batch_size=16, training=True, seed=7))
    other, _, _ = epoch(make_pipeline(split, batch_size=16, training=True, seed=8))
    assert again == first and other != first


def test_evaluation_pipeline_keeps_order_and_converts_shape() -> None:
    split = split_of(10)
    order, labels, sizes = epoch(make_pipeline(split, batch_size=4, training=False))
    assert order == list(range(10)) and labels == [i % 3 for i in range(10)]
    assert sizes == [4, 4, 2]
    dataset = make_pipeline(split, batch_size=4, training=False, target_shape=(8, 8, 3))
    images, _ = next(iter(dataset))
    assert tuple(images.shape) == (4, 8, 8, 3)
    np.testing.assert_allclose(images.numpy()[1], 1.0)
