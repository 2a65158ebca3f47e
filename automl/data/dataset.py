"""The one shape every data source becomes: train / val / test splits of uint8-ready images.

Images are arrays of shape (n, height, width, channels) holding pixel values in [0, 255] (uint8,
or float32 for sources that were float): in memory for small sources (digits, `.npz`,
`keras.datasets`), memory-mapped from the on-disk image cache for folders (`automl.data.cache`)
or from the files a notebook's `tf.data` pipeline was written to (`automl.data.streamed`), which
nothing reads whole. Labels are integer class indices. Nothing here imports TensorFlow;
`automl.data.pipeline` turns a split into a `tf.data` pipeline.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from automl.errors import DataError
from automl.storage.atomic import atomic_path


@dataclass(frozen=True)
class Split:
    """Images and integer labels of one split."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Dataset:
    """A prepared data source.

    Attributes:
        source: the data spec as the user gave it (`digits`, `data/flowers`, `x.npz`, …).
        train: training split.
        val: validation split (the search objective is measured on it).
        test: held-out split, used only after the search (retrain, export).
        class_names: class names, index = label.
        sha256: content hash of all splits and class names.
        notes: conversions made while loading (resized, converted, skipped files).
    """

    source: str
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]
    sha256: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def input_shape(self) -> tuple[int, int, int]:
        shape = self.train.x.shape[1:]
        return (int(shape[0]), int(shape[1]), int(shape[2]))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def content_hash(splits: dict[str, Split], class_names: tuple[str, ...]) -> str:
    """sha256 over every split's arrays (shape, dtype, bytes) and the class names."""
    digest = hashlib.sha256()
    for name in ("train", "val", "test"):
        split = splits[name]
        for array in (split.x, split.y):
            digest.update(f"{name}:{array.shape}:{array.dtype}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\x00".join(class_names).encode("utf-8"))
    return digest.hexdigest()


def stratified_split(
    y: np.ndarray,
    fractions: tuple[float, ...],
    *,
    seed: int,
    class_names: tuple[str, ...],
    where: str,
) -> list[np.ndarray]:
    """Split indices of `y` into len(fractions) + 1 parts, per class, with a seed.

    The first part takes what the fractions leave. Each class gives at least one example to
    every part, so each class needs at least len(fractions) + 1 examples.

    Raises:
        DataError: a class is too small for the split.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    needed = len(fractions) + 1
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if len(members) < needed:
            name = class_names[int(label)] if int(label) < len(class_names) else str(label)
            raise DataError(
                f"{where}: class '{name}' has {len(members)} example(s); splitting it into "
                f"{needed} parts (train + {len(fractions)} held out) needs at least {needed}. "
                "Add examples, provide the splits yourself, or lower --val-split/--test-split."
            )
        members = rng.permutation(members)
        counts = [max(1, round(f * len(members))) for f in fractions]
        while sum(counts) > len(members) - 1:  # keep at least one example for training
            counts[counts.index(max(counts))] -= 1
        bounds = np.cumsum([0, *counts])
        for i in range(len(counts)):
            parts[i + 1].append(members[bounds[i] : bounds[i + 1]])
        parts[0].append(members[bounds[-1] :])
    return [np.sort(np.concatenate(p)) for p in parts]


def check_fraction(value: float, name: str) -> float:
    """A split fraction must lie in [0, 0.9)."""
    if not 0.0 <= value < 0.9:
        raise DataError(f"{name} must be in [0, 0.9), got {value}; e.g. {name} 0.2.")
    return value


def take(x: np.ndarray, y: np.ndarray, index: np.ndarray) -> Split:
    return Split(x=x[index], y=y[index])


def save_dataset(dataset: Dataset, path: str | os.PathLike[str]) -> None:
    """Write a prepared dataset as one .npz (atomically), so workers load it without decoding.

    Splits held in memory are written out; splits memory-mapped from the image cache are
    written as references to their cache files (a few bytes), which workers map again.
    """
    arrays: dict[str, np.ndarray] = {
        "class_names": np.array(dataset.class_names, dtype=str),
        "source": np.array(dataset.source),
        "sha256": np.array(dataset.sha256),
        "notes": np.array(dataset.notes, dtype=str),
    }
    for name in ("train", "val", "test"):
        split: Split = getattr(dataset, name)
        arrays[f"y_{name}"] = split.y
        if isinstance(split.x, np.memmap):
            arrays[f"file_{name}"] = np.array(str(split.x.filename))
            arrays[f"shape_{name}"] = np.array(split.x.shape, dtype=np.int64)
            arrays[f"offset_{name}"] = np.array(split.x.offset, dtype=np.int64)
            arrays[f"dtype_{name}"] = np.array(str(split.x.dtype))
        else:
            arrays[f"x_{name}"] = split.x
    with atomic_path(Path(path)) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def load_saved_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Read what `save_dataset` wrote (cached splits memory-mapped, not read)."""
    with np.load(path, allow_pickle=False) as data:
        splits = {}
        for name in ("train", "val", "test"):
            if f"file_{name}" in data.files:
                dtype = str(data[f"dtype_{name}"]) if f"dtype_{name}" in data.files else "uint8"
                x: np.ndarray = np.memmap(
                    str(data[f"file_{name}"]),
                    dtype=np.dtype(dtype),
                    mode="r",
                    offset=int(data[f"offset_{name}"]),
                    shape=tuple(int(n) for n in data[f"shape_{name}"]),
                )
            else:
                x = data[f"x_{name}"]
            splits[name] = Split(x, data[f"y_{name}"])
        return Dataset(
            source=str(data["source"]),
            train=splits["train"],
            val=splits["val"],
            test=splits["test"],
            class_names=tuple(str(c) for c in data["class_names"]),
            sha256=str(data["sha256"]),
            notes=tuple(str(n) for n in data["notes"]),
        )
