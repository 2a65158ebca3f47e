"""A `tf.data.Dataset` given to `automl.Tuner.search`, written once into the study's folder.

A notebook's `tf.data` pipeline may be larger than memory (`image_dataset_from_directory`,
a generator, a `map` that decodes files), and worker processes cannot run the notebook's
pipeline. So it is iterated once, a batch at a time, in the notebook's process, and its rows are
appended to one file per split in the layout of the image cache (`automl.data.cache`): row i
of `train.bin` is training image i, labels beside in `labels.npz`. Every worker memory-maps
those files and reads each batch's rows by index (`automl.data.pipeline`), shuffling over the
whole split every epoch; retraining, the report's test evaluation and export read the same
files. Nothing of the data is held whole in any process.

(`tf.data.Dataset.save` writes a format that can only be read in order; the engine's one
pipeline reads rows by index, so the rows are written in its own layout instead.)

The files live in `<study folder>/tfdata-<hash>/`, named by their content hash: a second
`search()` on the same data finds them and writes nothing new; other data gets its own folder
(and the study's resume check refuses it with the fix). They are written in a temporary folder
renamed into place when complete, so an interrupted write is never used.

Where the pipeline gives no validation or test set, rows of the training pipeline are held out
per class as they stream by (`validation_split`, `test_split`), by a weighted round robin per
class, so every class is held out in proportion without knowing the counts in advance.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl.data.cache import SPLITS, map_splits
from automl.data.dataset import Dataset, check_fraction
from automl.errors import DataError

SCALE_CHUNK_ROWS = 1024
SOURCE = "tf.data"


@dataclass
class _SplitFile:
    """One split's rows as they are appended."""

    path: Path
    handle: Any = None
    labels: list[np.ndarray] = field(default_factory=list)
    rows: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def append(self, images: np.ndarray, labels: np.ndarray) -> None:
        if not len(labels):
            return
        if self.handle is None:
            self.handle = open(self.path, "wb")  # noqa: SIM115 - closed in finish()
        data = np.ascontiguousarray(images).tobytes()
        self.handle.write(data)
        self.digest.update(data)
        self.labels.append(labels.astype(np.int64))
        self.rows += len(labels)

    def finish(self) -> np.ndarray:
        if self.handle is not None:
            self.handle.close()
        return np.concatenate(self.labels) if self.labels else np.zeros(0, np.int64)


@dataclass
class _Stream:
    """What every batch must agree on, learnt from the first one."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...] | None = None
    one_hot: int | None = None  # labels are one-hot rows of this many classes
    low: float = float("inf")
    high: float = float("-inf")


def save_tf_data(
    train: Any,
    validation: Any,
    test: Any,
    folder: Path,
    *,
    val_split: float,
    test_split: float,
    scale: bool,
) -> tuple[Dataset, int | None]:
    """Write the pipelines' rows into `folder/tfdata-<hash>/` and map them as a `Dataset`.

    Args:
        train: a `tf.data.Dataset` of (image, label) pairs, batched or not; the image
            (height, width[, channels]) of numbers, the label an integer class index or a
            one-hot row.
        validation: the same for validation, or None to hold out `val_split` of `train`.
        test: the same for the final test, or None to hold out `test_split` of `train`.
        folder: the study's folder.
        val_split: the fraction of `train` held out for validation when `validation` is None.
        test_split: the fraction held out for the test when `test` is None.
        scale: float pixels all in [0, 1] are scaled to [0, 255] (as `as_images` does).

    Returns:
        The dataset, its splits memory-mapped, and the class count when labels were one-hot.

    Raises:
        DataError: elements, shapes, labels or splits that cannot work, with the fix.
    """
    check_fraction(val_split, "validation_split")
    check_fraction(test_split, "test_split")
    given = {"train": train, "val": validation, "test": test}
    specs = {name: _image_dtype(d, _where(name)) for name, d in given.items() if d is not None}
    # One dtype for every split: uint8 stays uint8 (4x less disk and page cache), else float32.
    uint8 = all(dtype == np.uint8 for dtype in specs.values())
    stream = _Stream(np.dtype(np.uint8) if uint8 else np.dtype(np.float32))
    held_out = {
        name: fraction
        for name, fraction in (("val", val_split), ("test", test_split))
        if given[name] is None
    }
    if "val" in held_out and val_split <= 0:
        raise DataError("give validation_data (a tf.data.Dataset) or a validation_split above 0.")
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".tfdata-{os.getpid()}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        files = {name: _SplitFile(temporary / f"{name}.bin") for name in SPLITS}
        credit: dict[int, np.ndarray] = {}  # per class, each split's share owed (round robin)
        for name, pipeline in given.items():
            if pipeline is None:
                continue
            for images, labels in _batches(pipeline, stream, _where(name)):
                if name != "train" or not held_out:
                    files[name].append(images, labels)
                    continue
                where = _hold_out(labels, credit, held_out)
                for target in SPLITS:
                    chosen = where == target
                    if chosen.any():
                        files[target].append(images[chosen], labels[chosen])
        labels_of = {name: files[name].finish() for name in SPLITS}
        names = _class_names(labels_of, stream)
        _check_splits(labels_of, names)
        assert stream.shape is not None
        digest = hashlib.sha256()
        digest.update(f"tf.data:{stream.dtype}:{stream.shape}:{names}".encode())
        for name in SPLITS:
            digest.update(f"{name}:{files[name].rows}:{files[name].digest.hexdigest()}".encode())
            digest.update(labels_of[name].tobytes())
        scaled = scale and stream.dtype == np.float32 and 0.0 <= stream.low <= stream.high <= 1.0
        digest.update(f"scaled:{scaled}".encode())
        sha256 = digest.hexdigest()
        final = folder / f"tfdata-{sha256[:16]}"
        if not (final / "meta.json").is_file():
            if scaled:
                for name in SPLITS:
                    _scale_in_place(files[name].path, files[name].rows, stream)
            np.savez(temporary / "labels.npz", **labels_of)  # type: ignore[arg-type]
            meta = {
                "sha256": sha256,
                "dtype": str(stream.dtype),
                "shape": list(stream.shape),
                "class_names": list(names),
            }
            # Last: meta.json marks a complete folder.
            (temporary / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)
            temporary.rename(final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return open_tf_data(final), stream.one_hot


def open_tf_data(folder: Path) -> Dataset:
    """Memory-map what `save_tf_data` wrote (nothing of the files is read here)."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    shape = tuple(int(n) for n in meta["shape"])
    splits = map_splits(folder, shape, np.dtype(meta["dtype"]), suffix=".bin")
    return Dataset(
        source=SOURCE,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        class_names=tuple(meta["class_names"]),
        sha256=str(meta["sha256"]),
        notes=(f"a tf.data pipeline, written once to {folder}",),
    )


def _where(name: str) -> str:
    return {"train": "x", "val": "validation_data", "test": "test_data"}[name]


def _image_dtype(dataset: Any, where: str) -> np.dtype[Any]:
    """The images' dtype from the pipeline's element spec (checked to be an (image, label)
    pair of numbers)."""
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise DataError(
            f"search(): {where} must yield (image, label) pairs, got elements of {spec}; "
            "e.g. dataset.map(lambda features: (features['image'], features['label']))."
        )
    image, label = spec
    for part, what in ((image, "images"), (label, "labels")):
        if not hasattr(part, "dtype") or not (part.dtype.is_floating or part.dtype.is_integer):
            raise DataError(
                f"search(): the {what} of {where} are {part}; they must be numbers "
                "(integer class labels or one-hot rows for labels)."
            )
    return np.dtype(image.dtype.as_numpy_dtype)


def _batches(dataset: Any, stream: _Stream, where: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The pipeline's (images, integer labels) a batch at a time, checked and converted."""
    image_spec, label_spec = dataset.element_spec
    batched = _is_batched(image_spec.shape, label_spec.shape)
    empty = True
    for images, labels in dataset.as_numpy_iterator():
        if not batched:
            images, labels = images[np.newaxis], np.asarray(labels)[np.newaxis]
        images = _images(images, stream, where)
        labels = _labels(labels, stream, where)
        if len(images) != len(labels):
            raise DataError(
                f"search(): {where} yields {len(images)} images with {len(labels)} labels."
            )
        empty = empty and not len(labels)
        yield images, labels
    if empty:
        raise DataError(f"search(): {where} is empty.")


def _is_batched(image_shape: Any, label_shape: Any) -> bool:
    """Batched elements are (b, h, w[, c]) images with (b,) or (b, classes) labels."""
    if image_shape.rank == 4:
        return True
    if image_shape.rank != 3:
        return False
    if label_shape.rank == 2:
        return True
    if label_shape.rank == 1:
        # (b, h, w) with (b,) labels, or one (h, w, c) image with a one-hot label.
        return bool(image_shape[0] == label_shape[0] or image_shape[-1] not in (1, 3))
    return False


def _images(images: np.ndarray, stream: _Stream, where: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(
            f"search(): {where} yields images of shape {images.shape[1:]}; expected "
            "(height, width) or (height, width, 1|3)."
        )
    if stream.shape is None:
        stream.shape = tuple(int(n) for n in images.shape[1:])
    elif tuple(images.shape[1:]) != stream.shape:
        raise DataError(
            f"search(): {where} yields images of shape {tuple(images.shape[1:])} after "
            f"{stream.shape}; resize them in the pipeline, e.g. "
            ".map(lambda x, y: (tf.image.resize(x, (128, 128)), y))."
        )
    images = images.astype(stream.dtype, copy=False)
    if stream.dtype == np.float32 and images.size:
        low, high = float(images.min()), float(images.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            raise DataError(f"search(): {where} yields NaN or infinite pixel values.")
        stream.low, stream.high = min(stream.low, low), max(stream.high, high)
    return images


def _labels(labels: np.ndarray, stream: _Stream, where: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot rows
        if not np.isin(labels, (0, 1)).all() or not (labels.sum(axis=1) == 1).all():
            raise DataError(
                f"search(): {where} yields labels of shape {labels.shape[1:]} that are not "
                "one-hot rows; yield integer class labels or one-hot rows of 0 and 1."
            )
        if stream.one_hot not in (None, labels.shape[1]):
            raise DataError(f"search(): {where} yields one-hot rows of different lengths.")
        stream.one_hot = int(labels.shape[1])
        return labels.argmax(axis=1)
    labels = labels.reshape(-1)
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(labels == np.round(labels)):
            raise DataError(f"search(): {where} yields labels that are not class indices.")
        labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise DataError(f"search(): {where} yields negative labels; use class indices 0..k-1.")
    return labels


def _hold_out(
    labels: np.ndarray, credit: dict[int, np.ndarray], held_out: dict[str, float]
) -> np.ndarray:
    """The split of each training row, per class by smooth weighted round robin: after any
    number of a class's rows, each split holds its fraction of them to within one row."""
    targets = ["train", *held_out]
    weights = np.array([1.0 - sum(held_out.values()), *held_out.values()])
    where = np.empty(len(labels), dtype=object)
    for i, label in enumerate(labels.tolist()):
        current = credit.setdefault(label, np.zeros(len(targets)))
        current += weights
        chosen = int(np.argmax(current))
        current[chosen] -= 1.0
        where[i] = targets[chosen]
    return where


def _class_names(labels: dict[str, np.ndarray], stream: _Stream) -> tuple[str, ...]:
    top = max(int(y.max()) for y in labels.values() if y.size)
    count = max(top + 1, stream.one_hot or 0)
    return tuple(str(i) for i in range(count))


def _check_splits(labels: dict[str, np.ndarray], names: tuple[str, ...]) -> None:
    if len(names) < 2:
        raise DataError("search(): the tf.data pipeline holds one class; classification needs two.")
    for name in SPLITS:
        if not labels[name].size:
            raise DataError(
                f"search(): the {name} split of the tf.data pipeline is empty; give "
                f"{'validation_data' if name == 'val' else 'test_data'} or more rows."
            )
    absent = np.flatnonzero(np.bincount(labels["train"], minlength=len(names)) == 0)
    if len(absent) and len(absent) < len(names):
        listed = ", ".join(names[i] for i in absent)
        raise DataError(f"search(): class(es) {listed} have no training rows; add some.")


def _scale_in_place(path: Path, rows: int, stream: _Stream) -> None:
    """Pixels in [0, 1] to [0, 255], a chunk of rows at a time."""
    if not rows:
        return
    assert stream.shape is not None
    pixels = np.memmap(path, dtype=np.float32, mode="r+", shape=(rows, *stream.shape))
    for start in range(0, rows, SCALE_CHUNK_ROWS):
        pixels[start : start + SCALE_CHUNK_ROWS] *= 255.0
    pixels.flush()
    del pixels
