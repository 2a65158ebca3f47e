"""Data sources and the input pipeline.

`load_dataset(spec, options)` gives a `Dataset` (train / val / test, class names, input shape,
content hash) for `digits`, a `.npz` file, an image folder or a `keras.datasets` name.
`automl.data.pipeline` (which imports TensorFlow) turns a split into a `tf.data` pipeline.
"""

from __future__ import annotations

from automl.data.dataset import Dataset, Split, load_saved_dataset, save_dataset
from automl.data.sources import NAMED_SOURCES, DataOptions, load_dataset

__all__ = [
    "NAMED_SOURCES",
    "DataOptions",
    "Dataset",
    "Split",
    "load_dataset",
    "load_saved_dataset",
    "save_dataset",
]
