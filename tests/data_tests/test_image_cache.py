"""Image folders through the on-disk cache: decoded once, memory-mapped, read by index, reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from automl.data import DataOptions, load_dataset, load_saved_dataset, save_dataset
from automl.data.images import decode_image

from ..conftest import REPO, run_script
from ..images import make_folder


def _rows(dataset: object) -> set[bytes]:
    return {
        bytes(row)
        for name in ("train", "val", "test")
        for row in np.asarray(getattr(dataset, name).x)
    }


def test_a_folder_is_decoded_once_into_memory_mapped_splits(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", per_class=8)
    data = load_dataset(str(root))
    for split in (data.train, data.val, data.test):
        assert isinstance(split.x, np.memmap) and split.x.dtype == np.uint8
    # Every file's pixels, decoded at the chosen size, are one row of the cache.
    files = sorted((root).rglob("*.png"))
    decoded = {decode_image(f, (10, 12), True).tobytes() for f in files}
    assert _rows(data) == decoded and sum(data.sizes().values()) == len(files)
    cache = Path(data.train.x.filename).parent
    written = (cache / "train.u8").stat().st_mtime_ns
    again = load_dataset(str(root))
    assert Path(again.train.x.filename).parent == cache  # reused, not decoded again
    assert (cache / "train.u8").stat().st_mtime_ns == written
    assert again.sha256 == data.sha256
    assert json.loads((cache / "meta.json").read_text())["shape"] == [10, 12, 3]


def test_the_image_size_is_chosen_and_part_of_the_hash(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", per_class=8)
    default = load_dataset(str(root))
    small = load_dataset(str(root), DataOptions(image_size=(8, 6)))
    assert small.input_shape == (8, 6, 3) and default.input_shape == (10, 12, 3)
    assert small.sha256 != default.sha256
    assert "resized 16 image(s) to 8×6" in small.notes


def test_a_changed_file_makes_a_new_cache(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", per_class=8)
    first = load_dataset(str(root))
    from ..images import write_png

    write_png(root / "cat" / "0.png", (16, 16), "RGB", seed=999)
    os.utime(root / "cat" / "0.png", ns=(1, 1))  # another modification time
    second = load_dataset(str(root))
    assert second.sha256 != first.sha256
    assert Path(second.train.x.filename).parent != Path(first.train.x.filename).parent


def test_the_saved_dataset_of_a_folder_holds_references(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", per_class=8)
    data = load_dataset(str(root))
    save_dataset(data, tmp_path / "dataset.npz")
    assert (tmp_path / "dataset.npz").stat().st_size < 20_000
    loaded = load_saved_dataset(tmp_path / "dataset.npz")
    assert isinstance(loaded.train.x, np.memmap)
    assert np.array_equal(loaded.test.x, data.test.x) and loaded.sha256 == data.sha256


def test_the_pipeline_reads_cached_rows_as_it_slices_arrays(tmp_path: Path, tf: object) -> None:
    from automl.data.dataset import Split
    from automl.data.pipeline import make_pipeline

    root = make_folder(tmp_path / "imgs", per_class=12)
    data = load_dataset(str(root), DataOptions(val_split=0.2, test_split=0.2))
    in_memory = Split(np.array(data.train.x), data.train.y)

    def batches(split: object, target: tuple[int, int, int] | None = None) -> list[np.ndarray]:
        pipeline = make_pipeline(split, batch_size=5, training=False, target_shape=target)  # type: ignore[arg-type]
        return [np.asarray(x) for x, _ in pipeline]

    for got, want in zip(batches(data.train), batches(in_memory), strict=True):
        assert got.dtype == np.float32 and np.array_equal(got, want)
    resized = batches(data.train, (20, 24, 1))  # resized and converted per batch
    assert resized[0].shape[1:] == (20, 24, 1)
    joined = make_pipeline((data.train, data.val), batch_size=64, training=True, seed=1)
    labels = np.concatenate([np.asarray(y) for _, y in joined])
    assert sorted(labels) == sorted(np.concatenate([data.train.y, data.val.y]))


def _epoch_memory(path: Path, images: int) -> tuple[int, float]:
    """In a fresh process: images seen in one epoch over a cache of `images` 256×256×3 rows, and
    how much resident memory grew during it (MiB)."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        from automl.data.dataset import Split
        from automl.data.pipeline import make_pipeline

        def rss():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

        shape = ({images}, 256, 256, 3)
        with open({str(path)!r}, "wb") as f:
            f.truncate(int(np.prod(shape)))
        x = np.memmap({str(path)!r}, dtype=np.uint8, mode="r", shape=shape)
        pipeline = make_pipeline(Split(x, np.arange({images}) % 5), batch_size=32, training=True)
        next(iter(pipeline))  # TensorFlow and the pipeline started
        before = rss()
        seen = sum(int(batch.shape[0]) for batch, _ in pipeline)
        print("SEEN", seen, "GROWTH", rss() - before)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    words = result.stdout.split()
    return int(words[words.index("SEEN") + 1]), float(words[words.index("GROWTH") + 1])


def test_memory_does_not_grow_with_the_number_of_images(tmp_path: Path) -> None:
    """One epoch over 8,000 cached 256×256×3 images (1.5 GB of uint8, 6.3 GB as float32): what
    the pipeline holds is a few batches in flight (25 MB of float32 each), never the data.

    glibc keeps some freed batches resident, more or less by chance (50–250 MiB here, at 500 as
    at 4,000 images), so the bound is set against the data: holding the split in any form, as
    the pipeline did before (a float32 copy of it), grows by gigabytes."""
    images, growth = _epoch_memory(tmp_path / "large.u8", 8000)
    assert images == 8000
    assert growth < 500, f"grew {growth:.0f} MiB over an epoch of 8,000 images (1.5 GB)"


@pytest.mark.parametrize("size", ["12x", "0x4", "axb", "5000x5000"])
def test_bad_image_sizes_are_refused(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    from automl.cli import main

    assert main(["check", "spaces/cnn.py", "--image-size", size]) == 2
    err = capsys.readouterr().err
    assert "--image-size" in err and len(err.strip().splitlines()) == 1


def test_a_larger_folder_is_decoded_in_parallel_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automl.data import cache

    from ..images import write_png

    root = tmp_path / "many"
    count = cache.PARALLEL_FROM + 44  # past the in-process threshold
    for i in range(count):
        write_png(root / ("a" if i % 2 else "b") / f"{i}.png", (6, 5), "RGB", seed=i)
    data = load_dataset(str(root))
    files = sorted(root.rglob("*.png"))
    assert sum(data.sizes().values()) == count
    assert _rows(data) == {decode_image(f, (5, 6), True).tobytes() for f in files}
    # The hash is made of each chunk's digest, computed where it was decoded: the same in one
    # process as in several, and it changes with a pixel.
    monkeypatch.setenv("AUTOML_CACHE", str(tmp_path / "one-process"))
    monkeypatch.setattr(cache, "PARALLEL_FROM", 10**9)
    alone = load_dataset(str(root))
    assert Path(alone.train.x.filename).parent != Path(data.train.x.filename).parent
    assert alone.sha256 == data.sha256
    write_png(root / "a" / "1.png", (6, 5), "RGB", seed=10**6)
    os.utime(root / "a" / "1.png", ns=(1, 1))
    assert load_dataset(str(root)).sha256 != data.sha256


def test_a_script_without_a_main_guard_loads_a_folder_once(tmp_path: Path) -> None:
    """The decoding processes are spawned without running the user's script again, so a script
    without `if __name__ == "__main__":` (which used to wait for ever on the cache lock its own
    parent held, then was told the fix) loads the folder once; a guarded one too."""
    from automl.data import cache

    from ..images import write_png

    root = tmp_path / "many"
    for i in range(cache.PARALLEL_FROM + 4):
        write_png(root / ("a" if i % 2 else "b") / f"{i}.png", (6, 5), "RGB", seed=i)
    script = tmp_path / "train.py"
    script.write_text(
        f"from automl.data import load_dataset\nload_dataset({str(root)!r})\nprint('LOADED')\n"
    )
    result = run_script(script, timeout=120)
    assert result.returncode == 0 and result.stdout.count("LOADED") == 1, result.stderr[-2000:]
    guarded = tmp_path / "guarded.py"
    body = script.read_text().replace("\n", "\n    ")
    guarded.write_text(f'if __name__ == "__main__":\n    {body}')
    result = run_script(guarded, timeout=120)
    assert result.returncode == 0 and "LOADED" in result.stdout, result.stderr[-2000:]


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_close_to_a_full_decode(tmp_path: Path) -> None:
    """A JPEG at least twice the training size is decoded by libjpeg at 1/2, 1/4 or 1/8 scale
    (`draft`), then resized: the pixels stay within a few levels of a full decode."""
    from PIL import Image

    yy, xx = np.mgrid[0:960, 0:1280].astype(np.float32)
    pixels = np.stack(
        [np.sin(xx / 40) * 120 + 128, np.cos(yy / 55) * 120 + 128, (xx + yy) / 9 % 256], axis=-1
    ).astype(np.uint8)
    path = tmp_path / "big.jpg"
    Image.fromarray(pixels).save(path, quality=92)
    decoded = decode_image(path, (96, 128), True)
    with Image.open(path) as image:
        full = np.asarray(image.convert("RGB").resize((128, 96), Image.Resampling.BILINEAR))
    with Image.open(path) as image:
        image.draft("RGB", (128, 96))
        reduced = image.size
    assert decoded.shape == (96, 128, 3) and reduced == (160, 120)  # decoded at 1/8 scale
    difference = np.abs(decoded.astype(np.int16) - full.astype(np.int16))
    assert 0 < difference.mean() < 2.0
