"""Data sources: `digits`, `.npz` files, image folders and the `keras.datasets` names.

`load_dataset(spec)` turns any of them into a `Dataset`, making missing splits (stratified, with
a seed) and checking everything before a trial starts: each problem is a `DataError` naming the
path and the fix. No TensorFlow import happens here.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automl.data.cache import build_cache
from automl.data.dataset import (
    Dataset,
    Split,
    check_fraction,
    content_hash,
    stratified_split,
    take,
)
from automl.data.images import report_bad, scan_image_folder
from automl.errors import DataError, shown_path

KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")
NAMED_SOURCES = ("digits", *KERAS_DATASETS)
DEFAULT_MAX_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class DataOptions:
    """How a source becomes a dataset.

    Attributes:
        val_split: fraction of the pool held out for validation when the source has no val
            split. Defaults to `0.2`.
        test_split: fraction held out for the final test when the source has no test split.
            Defaults to `0.2`.
        seed: seed of the stratified splits. Defaults to `0`.
        skip_bad_images: skip corrupt, empty, non-image and oversized files (their count is
            reported) instead of failing. Defaults to `False`.
        max_pixels: images with more pixels are refused. Defaults to 4096 × 4096.
        image_size: (height, width) images of a folder are resized to; `None` picks the most
            common size, capped at 256 on the long side. Defaults to `None`.
    """

    val_split: float = 0.2
    test_split: float = 0.2
    seed: int = 0
    skip_bad_images: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    image_size: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "val_split": self.val_split,
            "test_split": self.test_split,
            "seed": self.seed,
            "skip_bad_images": self.skip_bad_images,
            "max_pixels": self.max_pixels,
            "image_size": list(self.image_size) if self.image_size else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataOptions:
        """The options `to_dict` stored (unknown keys, from other versions, are ignored)."""
        default = cls()
        size = data.get("image_size")
        return cls(
            val_split=float(data.get("val_split", default.val_split)),
            test_split=float(data.get("test_split", default.test_split)),
            seed=int(data.get("seed", default.seed)),
            skip_bad_images=bool(data.get("skip_bad_images", default.skip_bad_images)),
            max_pixels=int(data.get("max_pixels", default.max_pixels)),
            image_size=(int(size[0]), int(size[1])) if size else None,
        )


def load_dataset(spec: str, options: DataOptions | None = None) -> Dataset:
    """Load and split a data source.

    Args:
        spec: `digits`, `mnist`, `fashion_mnist`, `cifar10`, `cifar100`, a `.npz` file, or an
            image folder (one subfolder per class, optionally under `train/ val/ test/`).
        options: split and image options. Defaults to `DataOptions()`.

    Raises:
        DataError: the source is missing, empty, or holds bad data.
    """
    options = options or DataOptions()
    check_fraction(options.val_split, "--val-split")
    check_fraction(options.test_split, "--test-split")
    if options.val_split <= 0:
        raise DataError("--val-split must be above 0: the search measures trials on it.")
    if spec in NAMED_SOURCES:
        pools = _load_named(spec)
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            return _load_folder(spec, path, options)
        if path.suffix.lower() == ".npz" and path.is_file():
            pools = _load_npz(path)
        elif path.exists():
            raise DataError(
                f"{shown_path(path)}: not a data source; give a folder of images, a .npz file, "
                f"or one of {', '.join(NAMED_SOURCES)}."
            )
        else:
            raise DataError(
                f"{spec}: no such data source (not a file or folder, and not one of "
                f"{', '.join(NAMED_SOURCES)}); check the path."
            )
    return _make_splits(spec, pools, options)


@dataclass(frozen=True)
class Pools:
    """What a source gives before splitting: its own splits (train required) and class names."""

    splits: Mapping[str, Split]
    class_names: tuple[str, ...]
    notes: tuple[str, ...] = ()


def _split_rows(
    where: str, names: tuple[str, ...], labels: Mapping[str, np.ndarray], options: DataOptions
) -> dict[str, np.ndarray]:
    """The rows of the source's train split that become train / val / test where the source has
    no val or test split of its own (stratified, seeded); checks classes and labels."""
    if len(names) < 2:
        raise DataError(
            f"{where}: only one class ({', '.join(names) or 'none'}) found; classification "
            "needs at least two classes."
        )
    rows = {name: np.arange(len(y)) for name, y in labels.items()}
    missing = [name for name in ("val", "test") if name not in labels]
    if missing:
        fractions = tuple(
            options.val_split if name == "val" else options.test_split for name in missing
        )
        # Fractions are of the whole pool; the remaining train part takes what is left.
        parts = stratified_split(
            labels["train"], fractions, seed=options.seed, class_names=names, where=where
        )
        rows["train"] = parts[0]
        for name, index in zip(missing, parts[1:], strict=False):
            rows[name] = index
    for name, index in rows.items():
        if len(index) == 0:
            raise DataError(f"{where}: the {name} split is empty; add images to it.")
        source = labels[name if name in labels else "train"]
        present = np.unique(source[index])
        if present.min() < 0 or present.max() >= len(names):
            raise DataError(f"{where}: {name} labels must lie in [0, {len(names) - 1}].")
    counts = np.bincount(labels["train"][rows["train"]], minlength=len(names))
    if (counts == 0).any():
        absent = [names[i] for i in np.flatnonzero(counts == 0)]
        raise DataError(
            f"{where}: class(es) {', '.join(absent)} have no training examples; add some."
        )
    return rows


def _make_splits(spec: str, pools: Pools, options: DataOptions) -> Dataset:
    where = spec
    names = pools.class_names
    rows = _split_rows(where, names, {n: s.y for n, s in pools.splits.items()}, options)
    splits = {
        name: take(pools.splits[name if name in pools.splits else "train"].x,
                   pools.splits[name if name in pools.splits else "train"].y, index)
        for name, index in rows.items()
    }  # fmt: skip
    shapes = {split.x.shape[1:] for split in splits.values()}
    if len(shapes) > 1:
        raise DataError(f"{where}: splits have different image shapes {sorted(shapes)}.")
    ordered = {name: splits[name] for name in ("train", "val", "test")}
    return Dataset(
        source=spec,
        train=ordered["train"],
        val=ordered["val"],
        test=ordered["test"],
        class_names=names,
        sha256=content_hash(ordered, names),
        notes=pools.notes,
    )


def _load_folder(spec: str, root: Path, options: DataOptions) -> Dataset:
    """An image folder: scanned (headers), split by labels, then decoded once into the on-disk
    cache that every worker reads from (`automl.data.cache`)."""
    listing = scan_image_folder(root, options)
    names = listing.class_names
    labels = {
        split: np.array([label for _, label in files], dtype=np.int64)
        for split, files in listing.files.items()
    }
    rows = _split_rows(spec, names, labels, options)
    assignment = {
        name: [listing.files[name if name in listing.files else "train"][i] for i in index]
        for name, index in rows.items()
    }
    cached = build_cache(
        root, assignment, size=listing.size, colour=listing.colour, class_names=names
    )
    bad = [*listing.bad, *cached.bad]
    report_bad(root, bad, options)  # every bad file at once, before any trial
    if cached.bad:  # skipped: the cache again without the files that did not decode
        failed = {path.resolve() for path, _ in cached.bad}
        assignment = {
            n: [f for f in files if f[0].resolve() not in failed] for n, files in assignment.items()
        }
        cached = build_cache(
            root, assignment, size=listing.size, colour=listing.colour, class_names=names
        )
    notes = ([f"skipped {len(bad)} bad file(s)"] if bad else []) + list(listing.notes)
    return Dataset(
        source=spec,
        train=cached.splits["train"],
        val=cached.splits["val"],
        test=cached.splits["test"],
        class_names=names,
        sha256=cached.sha256,
        notes=tuple(notes),
    )


def _load_named(name: str) -> Pools:
    if name == "digits":
        return _load_digits()
    return _load_keras_dataset(name)


def _load_digits() -> Pools:
    # scikit-learn's digits, read from the file it ships (`load_digits` reads the same one):
    # importing scikit-learn costs ~2 s at every start of a search, scheduler restarts included.
    spec = importlib.util.find_spec("sklearn")
    bundled = (
        Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if spec is not None and spec.origin
        else None
    )
    if bundled is not None and bundled.is_file():
        table = np.loadtxt(bundled, delimiter=",")
        images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    else:  # a scikit-learn that keeps the file elsewhere
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, target = bunch.images, bunch.target
    # 8×8 images with values 0..16, scaled to the 0..255 range every source uses.
    x = np.round(images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    y = target.astype(np.int64)
    return Pools({"train": Split(x, y)}, tuple(str(i) for i in range(10)))


def _load_npz(path: Path) -> Pools:
    shown = shown_path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(
            f"{shown}: cannot read as .npz ({exc}); write it with numpy.savez."
        ) from exc
    with data:
        keys = set(data.files)
        if not {"x_train", "y_train"} <= keys:
            raise DataError(
                f"{shown}: a data .npz needs arrays x_train and y_train (optional x_val, y_val, "
                f"x_test, y_test, class_names); it has {', '.join(sorted(keys)) or 'none'}."
            )
        raw = {}
        for split in ("train", "val", "test"):
            if f"x_{split}" in keys:
                if f"y_{split}" not in keys:
                    raise DataError(f"{shown}: x_{split} has no matching y_{split}.")
                raw[split] = (data[f"x_{split}"], data[f"y_{split}"])
        given_names = tuple(str(c) for c in data["class_names"]) if "class_names" in keys else ()
    return _pools(raw, shown, given_names, scale=True)


def dataset_from_arrays(
    x: Any,
    y: Any,
    validation: Any = None,
    test: Any = None,
    options: DataOptions | None = None,
    *,
    source: str = "arrays",
    scale: bool = False,
) -> Dataset:
    """Arrays as a notebook passes them (Keras Tuner's `search(x, y, validation_data=…)`).

    Pixel values are kept as given unless `scale` (as the sources above scale floats in
    [0, 1] to [0, 255] for the zoo's models): a notebook's model scales its input as it was
    written to. Missing val / test splits are taken from `x` as for any source.

    Raises:
        DataError: shapes, labels or splits that cannot work, with the fix.
    """
    options = options or DataOptions()
    check_fraction(options.val_split, "validation_split")
    check_fraction(options.test_split, "test_split")
    raw = {"train": (np.asarray(x), _labels(y, "y"))}
    for name, given in (("val", validation), ("test", test)):
        if given is None:
            continue
        if not isinstance(given, (tuple, list)) or len(given) != 2:
            what = "validation_data" if name == "val" else "test_data"
            raise DataError(f"{what} must be a pair (x, y) of arrays, got {type(given).__name__}.")
        raw[name] = (np.asarray(given[0]), _labels(given[1], f"y of {name}"))
    if "val" not in raw and options.val_split <= 0:
        raise DataError("give validation_data=(x_val, y_val) or a validation_split above 0.")
    labels = np.concatenate([y for _, y in raw.values()])
    names: tuple[str, ...] = ()
    if np.issubdtype(labels.dtype, np.integer) and labels.size and labels.min() >= 0:
        # Integer labels stay the indices the caller's model outputs (class 7 stays 7).
        names = tuple(str(i) for i in range(int(labels.max()) + 1))
    return _make_splits(source, _pools(raw, source, names, scale=scale), options)


def _labels(y: Any, where: str) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise DataError(
            f"{where}: one-hot labels of shape {labels.shape}; pass class indices "
            "(y.argmax(axis=1)) and compile with loss='sparse_categorical_crossentropy'."
        )
    return labels.reshape(-1)


def _pools(
    raw: Mapping[str, tuple[np.ndarray, np.ndarray]],
    shown: str,
    given_names: tuple[str, ...],
    *,
    scale: bool,
) -> Pools:
    """Splits of images and labels (any label values) as `Pools`: labels become class indices
    (of `given_names`, or of the sorted distinct labels)."""
    labels_all = np.concatenate([y.reshape(-1) for _, y in raw.values()])
    classes = np.unique(labels_all)
    if given_names:
        class_names = given_names
        if np.issubdtype(classes.dtype, np.integer) and (
            classes.min() < 0 or classes.max() >= len(given_names)
        ):
            raise DataError(f"{shown}: labels exceed the {len(given_names)} class_names given.")
        to_index = {c: int(c) for c in classes}
    else:
        class_names = tuple(str(c) for c in classes)
        to_index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split, (x, y) in raw.items():
        splits[split] = Split(
            as_images(x, f"{shown}: x_{split}", scale=scale),
            np.array([to_index[v] for v in y.reshape(-1)], dtype=np.int64),
        )
        if len(splits[split].x) != len(splits[split].y):
            raise DataError(f"{shown}: x_{split} and y_{split} differ in length.")
    return Pools(splits, class_names)


def as_images(x: np.ndarray, where: str, *, scale: bool = True) -> np.ndarray:
    """(n, h, w) or (n, h, w, c) pixels; floats in [0, 1] are scaled to [0, 255] if `scale`."""
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(
            f"{where} has shape {x.shape}; expected (n, height, width) or (n, height, width, 1|3)."
        )
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{where} has dtype {x.dtype}; expected numbers.")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{where} holds NaN or infinite values.")
    if scale and x.size and x.max() <= 1.0 and x.min() >= 0.0:
        x = x * 255.0
    return x


def keras_cache_dir() -> Path:
    """Where `keras.datasets` keeps downloads: `$KERAS_HOME/datasets` or `~/.keras/datasets`."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(base) / "datasets"


_KERAS_FILES = {
    "mnist": ("mnist.npz", "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"),
    "fashion_mnist": (
        "fashion-mnist/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/ (4 .gz files)",
    ),
    "cifar10": ("cifar-10-batches-py/", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": ("cifar-100-python/", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
}

_CLASS_NAMES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": (
        "t-shirt",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle-boot",
    ),
    "cifar10": (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
}


def _load_keras_dataset(name: str) -> Pools:
    """Read a `keras.datasets` download from the Keras cache; download it first if absent."""
    cache = keras_cache_dir()
    entry, origin = _KERAS_FILES[name]
    if _cached(cache, name) is None:
        _download_with_keras(name, cache / entry, origin)
    try:
        (x_train, y_train), (x_test, y_test), class_names = _read_keras_cache(name, cache)
    except (OSError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise DataError(
            f"{cache / entry}: the cached {name} files are unreadable ({exc}); delete them so "
            "they download again, or place the original files there."
        ) from exc
    return Pools(
        {
            "train": Split(as_images(x_train, name), y_train.reshape(-1).astype(np.int64)),
            "test": Split(as_images(x_test, name), y_test.reshape(-1).astype(np.int64)),
        },
        class_names,
    )


# Where each download lies in the Keras cache: Keras 3 extracts the CIFAR archives into a
# `…-target/` folder, earlier versions straight into the cache; both are read.
_CACHED = {
    "mnist": ("mnist.npz",),
    "fashion_mnist": ("fashion-mnist",),
    "cifar10": ("cifar-10-batches-py-target/cifar-10-batches-py", "cifar-10-batches-py"),
    "cifar100": ("cifar-100-python-target/cifar-100-python", "cifar-100-python"),
}


def _cached(cache: Path, name: str) -> Path | None:
    """The downloaded files of a Keras dataset in the cache, in any layout Keras writes."""
    return next((cache / c for c in _CACHED[name] if (cache / c).exists()), None)


def _download_with_keras(name: str, target: Path, origin: str) -> None:
    import keras

    loader = getattr(keras.datasets, name)
    try:
        loader.load_data()
    except Exception as exc:
        raise DataError(
            f"{name}: not in the Keras cache and the download failed "
            f"({type(exc).__name__}); with no network, place {origin} at {target} "
            "(cifar archives unpacked there)."
        ) from exc


def _read_keras_cache(
    name: str, cache: Path
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], tuple[str, ...]]:
    if name == "mnist":
        with np.load(cache / "mnist.npz", allow_pickle=False) as f:
            return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"]), _CLASS_NAMES[name]
    if name == "fashion_mnist":
        folder = cache / "fashion-mnist"

        def read(stem: str, offset: int) -> np.ndarray:
            with gzip.open(folder / f"{stem}.gz", "rb") as handle:
                return np.frombuffer(handle.read(), np.uint8, offset=offset)

        x_train = read("train-images-idx3-ubyte", 16).reshape(-1, 28, 28)
        x_test = read("t10k-images-idx3-ubyte", 16).reshape(-1, 28, 28)
        y_train = read("train-labels-idx1-ubyte", 8)
        y_test = read("t10k-labels-idx1-ubyte", 8)
        return (x_train, y_train), (x_test, y_test), _CLASS_NAMES[name]
    if name == "cifar10":
        folder = _cached(cache, name) or cache / "cifar-10-batches-py"
        batches = [_unpickle(folder / f"data_batch_{i}") for i in range(1, 6)]
        x_train = np.concatenate([b[b"data"] for b in batches])
        y_train = np.concatenate([np.array(b[b"labels"]) for b in batches])
        test = _unpickle(folder / "test_batch")
        return (
            (_chw_to_hwc(x_train), y_train),
            (_chw_to_hwc(test[b"data"]), np.array(test[b"labels"])),
            _CLASS_NAMES[name],
        )
    folder = _cached(cache, name) or cache / "cifar-100-python"
    train, test = _unpickle(folder / "train"), _unpickle(folder / "test")
    meta = _unpickle(folder / "meta")
    names = tuple(n.decode() for n in meta[b"fine_label_names"])
    return (
        (_chw_to_hwc(train[b"data"]), np.array(train[b"fine_labels"])),
        (_chw_to_hwc(test[b"data"]), np.array(test[b"fine_labels"])),
        names,
    )


def _unpickle(path: Path) -> dict[bytes, Any]:
    # The CIFAR archives are pickles by design; only files the user placed in the Keras cache
    # (or Keras downloaded from the official origin) are read, never anything from the store.
    with open(path, "rb") as handle:
        return pickle.load(handle, encoding="bytes")


def _chw_to_hwc(data: object) -> np.ndarray:
    array = np.asarray(data, dtype=np.uint8)
    return array.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
