"""The `tf.data` input pipeline: cast, resize and convert channels once, cache, shuffle, batch,
prefetch.

Images reach the model as float32 pixels in [0, 255] of the shape the model's input asks for;
each model scales them itself (see `automl.spaces.zoo.rescale`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from automl.data.dataset import Split
from automl.errors import DataError


def make_pipeline(
    split: Split,
    *,
    batch_size: int,
    training: bool,
    seed: int = 0,
    target_shape: tuple[int | None, ...] | None = None,
) -> Any:
    """A `tf.data.Dataset` of (images, labels) batches for one split.

    Args:
        split: the images (n, height, width, channels) and integer labels.
        batch_size: examples per batch.
        training: shuffle every epoch (with `seed`) when True.
        seed: shuffle seed. Defaults to `0`.
        target_shape: (height, width, channels) the model takes; images are resized and their
            channels converted when it differs from the data. Defaults to the data's shape.
    """
    from automl.tfruntime import import_tensorflow

    tf = import_tensorflow()
    x = prepare_images(split.x, target_shape)
    dataset = tf.data.Dataset.from_tensor_slices((x, split.y.astype(np.int32)))
    dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def prepare_images(x: np.ndarray, target_shape: tuple[int | None, ...] | None) -> np.ndarray:
    """float32 images in the model's input shape: resized (bilinear), channels converted."""
    images = x.astype(np.float32, copy=False)
    if target_shape is None:
        return images
    height, width, channels = target_shape[-3:]
    if channels is not None and channels != images.shape[-1]:
        if channels == 3 and images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        elif channels == 1 and images.shape[-1] == 3:
            # ITU-R 601 luma, as tf.image.rgb_to_grayscale and Pillow compute it.
            images = images @ np.array([[0.299], [0.587], [0.114]], dtype=np.float32)
        else:
            raise DataError(
                f"the model takes {channels}-channel images but the data has "
                f"{images.shape[-1]} channels; use 1 or 3 channels, or set the model's input to "
                f"{images.shape[-1]} channels (info.input_shape)."
            )
    if (height, width) != images.shape[1:3] and height is not None and width is not None:
        from automl.tfruntime import import_tensorflow

        tf = import_tensorflow()
        images = tf.image.resize(images, (height, width), method="bilinear").numpy()
    return images
