"""The `tf.data` input pipeline: shuffle, batch, then per batch cast to float32, resize and convert
channels, prefetch.

Two sources of pixels, one pipeline shape:
- in-memory splits (digits, `.npz`, `keras.datasets`) are sliced from their uint8 arrays, which
  `tf.data` keeps once (`cache`);
- splits memory-mapped from the on-disk image cache of a folder (`automl.data.cache`) are read
  by index, a batch at a time, with `os.preadv`: nothing of the file is mapped into the process,
  so a worker's memory does not grow with the number of images, and shuffling is over the whole
  split.

Pixels become float32 one batch at a time, never as a copy of a large split (small in-memory
splits, up to 64 MB as float32, are converted once, up front). Images reach the
model as float32 pixels in [0, 255] of the shape the model's input asks for; each model scales
them itself (see `automl.spaces.zoo.rescale`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from automl.data.dataset import Split
from automl.errors import DataError

# In-memory splits up to this size are sliced by tf.data from one constant; larger ones (and
# every memory-mapped split) are read by index, which never embeds the array in the graph.
MAX_IN_GRAPH_BYTES = 256 * 1024 * 1024
# In-memory splits whose float32 copy is at most this size are converted once, up front
# (digits: 0.5 MB): the per-batch conversion costs small data a tf.data step per batch.
SMALL_AS_FLOAT_BYTES = 64 * 1024 * 1024


def make_pipeline(
    split: Split | Sequence[Split],
    *,
    batch_size: int,
    training: bool,
    seed: int = 0,
    target_shape: tuple[int | None, ...] | None = None,
) -> Any:
    """A `tf.data.Dataset` of (images, labels) batches for one split (or several, joined).

    Args:
        split: the images (n, height, width, channels) and integer labels; several splits are
            joined (retraining on train + val) without copying them into one array.
        batch_size: examples per batch.
        training: shuffle every epoch (with `seed`) when True.
        seed: shuffle seed. Defaults to `0`.
        target_shape: (height, width, channels) the model takes; images are resized and their
            channels converted when it differs from the data. Defaults to the data's shape.
    """
    from automl.tfruntime import import_tensorflow

    tf = import_tensorflow()
    parts = (split,) if isinstance(split, Split) else tuple(split)
    shape = tuple(parts[0].x.shape[1:])
    _check_channels(shape[-1], target_shape)
    count = sum(len(p) for p in parts)
    if all(not isinstance(p.x, np.memmap) for p in parts) and (
        sum(p.x.nbytes for p in parts) <= MAX_IN_GRAPH_BYTES
    ):
        x = parts[0].x if len(parts) == 1 else np.concatenate([p.x for p in parts])
        if x.nbytes * 4 <= SMALL_AS_FLOAT_BYTES:
            x = x.astype(np.float32)  # small data: one float32 copy saves a step per batch
        y = np.concatenate([p.y for p in parts]).astype(np.int32)
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).cache()
        if training:
            dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size)
    else:
        reader = _RowReader(parts)
        dtype = tf.as_dtype(parts[0].x.dtype)
        dataset = tf.data.Dataset.range(count)
        if training:
            dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)

        def read(index: Any) -> tuple[Any, Any]:
            images, labels = tf.numpy_function(reader.read, [index], (dtype, tf.int32))
            images.set_shape((None, *shape))
            labels.set_shape((None,))
            return images, labels

        dataset = dataset.batch(batch_size).map(read, num_parallel_calls=tf.data.AUTOTUNE)
    if dataset.element_spec[0].dtype != tf.float32 or _needs_conversion(shape, target_shape):
        dataset = dataset.map(
            lambda images, labels: (_prepare_batch(tf, images, target_shape), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _needs_conversion(shape: tuple[int, ...], target: tuple[int | None, ...] | None) -> bool:
    """Whether images of `shape` must be resized or have their channels converted."""
    if target is None:
        return False
    return any(
        want is not None and want != have for want, have in zip(target[-3:], shape, strict=False)
    )


class _RowReader:
    """Reads rows of one or more splits by global index; memory-mapped ones with `os.preadv`."""

    def __init__(self, parts: Sequence[Split]) -> None:
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.labels = np.concatenate([p.y for p in parts]).astype(np.int32)
        self.shape = tuple(parts[0].x.shape[1:])
        self.dtype = parts[0].x.dtype
        self.row_bytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self._files: dict[int, int] = {}

    def read(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(index)  # nearby rows together: the page cache reads ahead
        out = np.empty((len(index), *self.shape), dtype=self.dtype)
        flat = out.reshape(len(index), -1).view(np.uint8)
        for position in order:
            row = int(index[position])
            which = int(np.searchsorted(self.starts, row, side="right")) - 1
            local = row - int(self.starts[which])
            x = self.parts[which].x
            if isinstance(x, np.memmap):
                descriptor = self._descriptor(which, x)
                offset = int(x.offset) + local * self.row_bytes
                if os.preadv(descriptor, [flat[position]], offset) != self.row_bytes:
                    raise DataError(
                        f"{x.filename}: the image cache ends early (row {local}); delete the "
                        "folder and run again to rebuild it."
                    )
            else:
                out[position] = x[local]
        return out, self.labels[index]

    def _descriptor(self, which: int, x: np.memmap) -> int:
        if which not in self._files:
            self._files[which] = os.open(str(x.filename), os.O_RDONLY)
        return self._files[which]

    def __del__(self, _close: Any = os.close) -> None:
        # Bound at definition: at interpreter exit, module globals may already be gone.
        for descriptor in self._files.values():
            try:  # noqa: SIM105 - contextlib may be torn down already
                _close(descriptor)
            except OSError:
                pass


def _check_channels(channels: int, target_shape: tuple[int | None, ...] | None) -> None:
    wanted = target_shape[-1] if target_shape is not None else None
    if wanted is None or wanted == channels or (channels, wanted) in ((1, 3), (3, 1)):
        return
    raise DataError(
        f"the model takes {wanted}-channel images but the data has {channels} channels; use 1 "
        f"or 3 channels, or set the model's input to {channels} channels (info.input_shape)."
    )


def _prepare_batch(tf: Any, images: Any, target_shape: tuple[int | None, ...] | None) -> Any:
    """float32 pixels in [0, 255], in the model's input shape: resized (bilinear), channels
    converted (gray repeated, or ITU-R 601 luma as Pillow and tf.image compute it)."""
    images = tf.cast(images, tf.float32)
    if target_shape is None:
        return images
    height, width, channels = target_shape[-3:]
    have = images.shape[-1]
    if channels is not None and channels != have:
        if channels == 3:
            images = tf.repeat(images, 3, axis=-1)
        else:
            luma = tf.constant([[0.299], [0.587], [0.114]], dtype=tf.float32)
            images = tf.tensordot(images, luma, axes=[[3], [0]])
    if height is not None and width is not None and (height, width) != tuple(images.shape[1:3]):
        images = tf.image.resize(images, (height, width), method="bilinear")
    return images


def prepare_images(x: np.ndarray, target_shape: tuple[int | None, ...] | None) -> np.ndarray:
    """float32 images in the model's input shape, for a few images at a time (export parity,
    calibration, prediction): the per-batch step of the pipeline, on a NumPy array."""
    _check_channels(x.shape[-1], target_shape)
    if target_shape is None:
        return np.asarray(x, dtype=np.float32)
    from automl.tfruntime import import_tensorflow

    tf = import_tensorflow()
    return np.asarray(_prepare_batch(tf, tf.constant(np.asarray(x)), target_shape))
