"""Data sources: digits, .npz, image folders, keras.datasets caches, and every bad-data case."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from automl.data import DataOptions, load_dataset, load_saved_dataset, save_dataset
from automl.errors import DataError

from ..images import make_folder, write_png
from .lying_images import WARNING_SIDE, write_bomb, write_not_an_image, write_truncated


def test_digits_is_split_stratified_with_a_seed() -> None:
    data = load_dataset("digits")
    assert data.input_shape == (8, 8, 1)
    assert data.num_classes == 10
    assert sum(data.sizes().values()) == 1797
    assert data.train.x.dtype == np.uint8 and data.train.x.max() == 255
    for split in (data.train, data.val, data.test):
        assert set(np.unique(split.y)) == set(range(10))
    again = load_dataset("digits")
    assert again.sha256 == data.sha256
    other = load_dataset("digits", DataOptions(seed=1))
    assert other.sha256 != data.sha256
    assert abs(len(data.val) - 0.2 * 1797) < 15


def test_digits_load_without_importing_scikit_learn() -> None:
    """The scheduler loads digits at every start (and restart after a crash): importing
    scikit-learn for it cost 1.9 s. The arrays are scikit-learn's own, read from its file."""
    import subprocess
    import sys

    code = (
        "import sys; from automl.data import load_dataset; d = load_dataset('digits'); "
        "print(d.sha256, 'sklearn' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[1] == "False"
    from sklearn.datasets import load_digits

    from automl.data import sources

    pools = sources._load_digits()
    bunch = load_digits()
    expected = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    assert np.array_equal(pools.splits["train"].x, expected)
    assert np.array_equal(pools.splits["train"].y, bunch.target)
    assert out[0] == load_dataset("digits").sha256


def test_npz_with_train_only_and_float_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((60, 6, 6)).astype(np.float32)
    y = np.array(["cat", "dog", "eel"] * 20)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    data = load_dataset(str(tmp_path / "d.npz"))
    assert data.class_names == ("cat", "dog", "eel")
    assert data.input_shape == (6, 6, 1)
    assert data.train.x.max() <= 255.0 and data.train.x.max() > 1.0
    assert sum(data.sizes().values()) == 60


def test_npz_with_all_splits_keeps_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)

    def images(n: int) -> np.ndarray:
        return rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)

    np.savez(
        tmp_path / "d.npz",
        x_train=images(20),
        y_train=np.arange(20) % 2,
        x_val=images(6),
        y_val=np.arange(6) % 2,
        x_test=images(4),
        y_test=np.arange(4) % 2,
        class_names=np.array(["no", "yes"]),
    )
    data = load_dataset(str(tmp_path / "d.npz"))
    assert data.sizes() == {"train": 20, "val": 6, "test": 4}
    assert data.class_names == ("no", "yes")


def test_npz_missing_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", images=np.zeros((3, 2, 2)))
    with pytest.raises(DataError, match=r"d.npz: a data .npz needs arrays x_train and y_train"):
        load_dataset(str(tmp_path / "d.npz"))


def test_saved_dataset_round_trip(tmp_path: Path) -> None:
    data = load_dataset("digits")
    save_dataset(data, tmp_path / "data.npz")
    loaded = load_saved_dataset(tmp_path / "data.npz")
    assert loaded.sha256 == data.sha256 and loaded.class_names == data.class_names
    assert np.array_equal(loaded.test.x, data.test.x)


# -- image folders --------------------------------------------------------------------------------


def test_folder_mixed_sizes_and_modes_are_converted(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    data = load_dataset(str(root))
    assert data.class_names == ("cat", "dog")
    assert data.input_shape == (10, 12, 3)  # most common size, colour because some are RGB
    assert sum(data.sizes().values()) == 12
    assert "resized 4 image(s) to 10×12" in data.notes
    assert "converted 6 grayscale image(s) to RGB" in data.notes


def test_folder_with_split_subfolders(tmp_path: Path) -> None:
    make_folder(tmp_path / "d" / "train", per_class=4)
    make_folder(tmp_path / "d" / "val", per_class=2)
    make_folder(tmp_path / "d" / "test", per_class=2)
    data = load_dataset(str(tmp_path / "d"))
    assert data.sizes() == {"train": 8, "val": 4, "test": 4}


def test_folder_other_formats(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", per_class=3)
    Image.new("RGB", (12, 10), (200, 10, 10)).save(root / "cat" / "x.jpg")
    Image.new("RGB", (12, 10), (10, 200, 10)).save(root / "dog" / "y.bmp")
    Image.new("P", (12, 10)).save(root / "dog" / "z.gif")
    data = load_dataset(str(root))
    assert sum(data.sizes().values()) == 9


def test_corrupt_zero_byte_and_non_image_files_are_all_listed(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "dog" / "empty.png").write_bytes(b"")
    (root / "dog" / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as caught:
        load_dataset(str(root))
    message = str(caught.value)
    assert "3 bad image file(s)" in message
    for name, why in (
        ("broken.png", "corrupt"),
        ("empty.png", "zero bytes"),
        ("notes.txt", "not an image file"),
    ):
        assert name in message and why in message
    assert "--skip-bad-images" in message
    data = load_dataset(str(root), DataOptions(skip_bad_images=True))
    assert "skipped 3 bad file(s)" in data.notes
    assert sum(data.sizes().values()) == 12


def test_images_over_the_pixel_limit(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    with pytest.raises(DataError, match=r"16×16 is over the 200-pixel limit"):
        load_dataset(str(root), DataOptions(max_pixels=200))


@pytest.mark.parametrize("max_pixels", [None, 10**9], ids=["our-limit", "pillow-limit"])
def test_decompression_bombs_and_lying_files_are_listed_per_file(
    tmp_path: Path, max_pixels: int | None
) -> None:
    """A few bytes declaring 20000×20000 (or 12000×12000) px are reported by path like any bad
    file, whether our pixel limit or Pillow's own bomb check catches them first; the rest
    load."""
    root = make_folder(tmp_path / "imgs")
    write_bomb(root / "cat" / "bomb.png")
    write_bomb(root / "dog" / "warning-bomb.png", WARNING_SIDE)
    write_truncated(root / "cat" / "truncated.png")
    write_not_an_image(root / "dog" / "notes.jpg")
    options = DataOptions() if max_pixels is None else DataOptions(max_pixels=max_pixels)
    with pytest.raises(DataError) as caught:
        load_dataset(str(root), options)
    message = str(caught.value)
    assert "4 bad image file(s)" in message and "\n" not in message
    for name in ("bomb.png", "warning-bomb.png", "truncated.png", "notes.jpg"):
        assert name in message
    if max_pixels is not None:  # Pillow's check: the size the file declares, not "corrupt"
        assert "bomb.png (declares 400,000,000 pixels" in message
        assert "warning-bomb.png (declares 144,000,000 pixels" in message
        assert message.count("possible decompression bomb, not decoded") == 2
    data = load_dataset(str(root), DataOptions(skip_bad_images=True, max_pixels=options.max_pixels))
    assert "skipped 4 bad file(s)" in data.notes
    assert sum(data.sizes().values()) == 12


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "no such data source"),
        ("empty", "the folder is empty"),
        ("loose", "no class subfolders"),
        ("one-class", "only one class (cat) found"),
        ("tiny-class", "class 'dog' has 2 example(s)"),
        ("empty-classes", "the class folders hold no files"),
    ],
)
def test_bad_folders(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "data"
    if layout != "missing":
        root.mkdir()
    if layout == "loose":
        write_png(root / "a.png", (8, 8), "L", 0)
    if layout == "one-class":
        make_folder(root, classes=("cat",))
    if layout == "tiny-class":
        make_folder(root, per_class=6, classes=("cat",))
        make_folder(root, per_class=2, classes=("dog",))
    if layout == "empty-classes":
        (root / "cat").mkdir()
        (root / "dog").mkdir()
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        load_dataset(str(root))
    assert str(caught.value).startswith(str(root)) or "data" in str(caught.value).split(":")[0]


def test_bad_split_fraction() -> None:
    with pytest.raises(DataError, match=r"--val-split must be in \[0, 0.9\)"):
        load_dataset("digits", DataOptions(val_split=1.5))


# -- keras.datasets through the Keras cache -------------------------------------------------------


def test_mnist_is_read_from_the_keras_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "keras" / "datasets"
    cache.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(
        cache / "mnist.npz",
        x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        y_train=np.arange(50) % 10,
        x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        y_test=np.arange(20) % 10,
    )
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    data = load_dataset("mnist")
    assert data.input_shape == (28, 28, 1)
    assert len(data.test) == 20 and len(data.train) + len(data.val) == 50


@pytest.mark.parametrize(
    "layout",
    ["cifar-10-batches-py-target/cifar-10-batches-py", "cifar-10-batches-py"],
    ids=["keras-3-today", "older-keras"],
)
def test_cifar10_is_read_from_the_keras_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    # Keras 3 extracts the archive into `cifar-10-batches-py-target/cifar-10-batches-py/`;
    # older versions into `cifar-10-batches-py/`. Both must read.
    folder = tmp_path / "keras" / "datasets" / layout
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
            b"labels": list(range(10)),
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    data = load_dataset("cifar10")
    assert data.input_shape == (32, 32, 3)
    assert data.class_names[0] == "airplane"
    assert len(data.test) == 10


@pytest.mark.parametrize("layout", ["cifar-100-python-target/cifar-100-python", "cifar-100-python"])
def test_cifar100_is_read_from_the_keras_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    folder = tmp_path / "keras" / "datasets" / layout
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, count in (("train", 200), ("test", 100)):
        split = {
            b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
            b"fine_labels": [i % 100 for i in range(count)],
        }
        (folder / name).write_bytes(pickle.dumps(split))
    names = [f"class{i}".encode() for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": names}))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    data = load_dataset("cifar100")
    assert data.num_classes == 100 and data.class_names[5] == "class5"
    assert len(data.test) == 100


def test_keras_dataset_offline_says_which_file_to_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    # A closed local port: the download fails at once, as it does with no network.
    for variable in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    with pytest.raises(DataError) as caught:
        load_dataset("mnist")
    message = str(caught.value)
    assert "not in the Keras cache and the download failed" in message
    assert "mnist.npz" in message and str(tmp_path / "keras" / "datasets") in message
