"""The on-disk image cache of a folder: every image decoded once, at the training size, into one
uint8 file per split that workers read by index.

A folder of photos is too large to hold decoded in memory (20,000 photos at 256×192 are 2.9 GB),
and decoding JPEGs every epoch costs more than the small models we train. So the scheduler
decodes each image once, in parallel processes, straight into `train.u8`, `val.u8` and
`test.u8` (row i of a split is its image i), and every worker memory-maps those files without
reading them: `automl.data.pipeline` reads the rows of each batch with `os.pread`. Memory then
stays flat however many images there are; the operating system's page cache shares the bytes
between workers.

The cache lives under `$AUTOML_CACHE` (default `~/.cache/automl`), in a folder named by a key
over what decides its content (the files' paths relative to the folder, sizes, modification
times, labels and splits, the image size and colour mode), so a rerun, a resume or another study
on the same folder reuses it. It is built in a temporary folder and renamed into place when
complete, under a lock, so an interrupted build is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automl.data.dataset import Split
from automl.errors import DataError
from automl.lifetime import SCRIPT_GUARD_FIX, holder_lock, main_module_hidden

CACHE_VERSION = 1
SPLITS = ("train", "val", "test")
# Below this many images, decoding in this process beats starting others.
PARALLEL_FROM = 256
CHUNK = 128


def cache_root() -> Path:
    """`$AUTOML_CACHE`, else `~/.cache/automl` (`$XDG_CACHE_HOME/automl`)."""
    if os.environ.get("AUTOML_CACHE"):
        return Path(os.environ["AUTOML_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "automl"


@dataclass(frozen=True)
class CachedSplits:
    """A built cache: one memory-mapped split per name, its content hash, the files that
    failed to decode.

    Attributes:
        splits: train / val / test, images memory-mapped (read-only), labels in memory.
        sha256: hash of every split's pixels and labels, the shape, and the class names.
        bad: files whose pixels did not decode (truncated, corrupt), with why.
        folder: where the cache is.
    """

    splits: dict[str, Split]
    sha256: str
    bad: tuple[tuple[Path, str], ...]
    folder: Path


def build_cache(
    root: Path,
    assignment: dict[str, list[tuple[Path, int]]],
    *,
    size: tuple[int, int],
    colour: bool,
    class_names: Sequence[str],
    workers: int | None = None,
) -> CachedSplits:
    """Decode the assigned files into the cache (or reuse a complete one with the same key).

    Args:
        root: the image folder (paths in the key are relative to it, so moving it is free).
        assignment: per split, the (path, label) of its images, in row order.
        size: (height, width) of every cached image.
        colour: RGB (else grayscale).
        class_names: the classes, hashed with the pixels.
        workers: decoding processes; None for one per core.
    """
    key = _key(root, assignment, size, colour)
    folder = cache_root() / "images" / key[:32]
    folder.parent.mkdir(parents=True, exist_ok=True)
    # One builder per cache at a time: two searches on one folder wait for each other.
    rerun = DataError(
        "the image cache was built again from inside a decoding process (spawned processes "
        f"run your script's top level again); {SCRIPT_GUARD_FIX}"
    )
    with holder_lock(folder.parent / f".{folder.name}.lock", rerun_error=rerun):
        if not (folder / "meta.json").is_file():
            _build(folder, assignment, size, colour, class_names, workers)
    return open_cache(folder)


def open_cache(folder: Path) -> CachedSplits:
    """Memory-map a complete cache (nothing of the files is read here)."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    shape = tuple(int(n) for n in meta["shape"])
    splits = map_splits(folder, shape, np.dtype(np.uint8), suffix=".u8")
    bad = tuple((Path(p), str(why)) for p, why in meta.get("bad", []))
    return CachedSplits(splits, str(meta["sha256"]), bad, folder)


def map_splits(
    folder: Path, shape: tuple[int, ...], dtype: np.dtype[Any], *, suffix: str
) -> dict[str, Split]:
    """The splits of a folder of row files (`<split><suffix>`, row i is image i) beside their
    labels (`labels.npz`), memory-mapped: nothing of the files is read here."""
    splits = {}
    with np.load(folder / "labels.npz", allow_pickle=False) as labels:
        for name in SPLITS:
            y = labels[name]
            x = (
                np.memmap(folder / f"{name}{suffix}", dtype=dtype, mode="r", shape=(len(y), *shape))
                if len(y)
                else np.zeros((0, *shape), dtype=dtype)
            )
            splits[name] = Split(x, y)
    return splits


def _build(
    folder: Path,
    assignment: dict[str, list[tuple[Path, int]]],
    size: tuple[int, int],
    colour: bool,
    class_names: Sequence[str],
    workers: int | None,
) -> None:
    shape = (size[0], size[1], 3 if colour else 1)
    row_bytes = int(np.prod(shape))
    building = folder.with_name(f".{folder.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        tasks = []
        task_splits = []
        for name in SPLITS:
            files = assignment.get(name, [])
            target = building / f"{name}.u8"
            with open(target, "wb") as handle:
                handle.truncate(len(files) * row_bytes)
            for start in range(0, len(files), CHUNK):
                chunk = [
                    (i, str(p)) for i, (p, _) in enumerate(files[start : start + CHUNK], start)
                ]
                tasks.append((str(target), chunk, size, colour))
                task_splits.append(name)
        results: list[tuple[list[tuple[str, str]], str]] = []
        total = sum(len(v) for v in assignment.values())
        if total < PARALLEL_FROM or (workers or os.cpu_count() or 1) <= 1:
            results = [_decode_chunk(*task) for task in tasks]
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            try:
                with (
                    main_module_hidden(),
                    ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool,
                ):
                    results = list(pool.map(_decode_chunk, *zip(*tasks, strict=True)))
            except BrokenProcessPool:
                raise DataError(
                    "a process decoding the images died (out of memory, killed, or the "
                    f"error above); when automl runs from a script, {SCRIPT_GUARD_FIX}"
                ) from None
        bad = [failure for failed, _ in results for failure in failed]
        labels = {
            name: np.array([label for _, label in assignment.get(name, [])], dtype=np.int64)
            for name in SPLITS
        }
        np.savez(building / "labels.npz", **labels)  # type: ignore[arg-type]
        chunks = {
            name: [d for s, (_, d) in zip(task_splits, results, strict=True) if s == name]
            for name in SPLITS
        }
        digest = _content_hash(chunks, labels, shape, class_names)
        meta = {"version": CACHE_VERSION, "shape": list(shape), "sha256": digest, "bad": bad}
        (building / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        for path in building.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(building, folder)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _decode_chunk(
    target: str, chunk: list[tuple[int, str]], size: tuple[int, int], colour: bool
) -> tuple[list[tuple[str, str]], str]:
    """Decode some images into their rows of `target`.

    Returns:
        The files that failed, with why, and the sha256 of the rows written, in order (the
        cache's hash is made of these, so no pass reads the cache again to hash it).
    """
    from automl.data.images import decode_image

    bad = []
    digest = hashlib.sha256()
    descriptor = os.open(target, os.O_WRONLY)
    try:
        row_bytes = size[0] * size[1] * (3 if colour else 1)
        for index, path in chunk:
            try:
                pixels = decode_image(Path(path), size, colour)
            except Exception as exc:  # every decoding failure is a bad file, reported by path
                bad.append((path, f"corrupt: {type(exc).__name__}"))
                continue
            row = pixels.tobytes()
            digest.update(row)
            os.pwrite(descriptor, row, index * row_bytes)
    finally:
        os.close(descriptor)
    return bad, digest.hexdigest()


def _content_hash(
    chunks: dict[str, list[str]],
    labels: dict[str, np.ndarray],
    shape: tuple[int, ...],
    class_names: Sequence[str],
) -> str:
    """sha256 over each split's pixels (the digests of its chunks of rows, in order) and
    labels, the shape and the class names."""
    digest = hashlib.sha256(f"images:{shape}".encode())
    for name in SPLITS:
        digest.update(f"{name}:".encode())
        for chunk in chunks[name]:
            digest.update(bytes.fromhex(chunk))
        digest.update(labels[name].tobytes())
    digest.update("\x00".join(class_names).encode("utf-8"))
    return digest.hexdigest()


def _key(
    root: Path,
    assignment: dict[str, list[tuple[Path, int]]],
    size: tuple[int, int],
    colour: bool,
) -> str:
    """What decides a cache's content: each file (relative path, size, modification time),
    its label and split and row, the image size and colour mode."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}:{size}:{colour}".encode())
    for name in SPLITS:
        digest.update(f"|{name}|".encode())
        for path, label in assignment.get(name, []):
            stat = path.stat()
            relative = os.path.relpath(path, root)
            digest.update(
                f"{relative}\x00{stat.st_size}\x00{stat.st_mtime_ns}\x00{label}\n".encode()
            )
    return digest.hexdigest()
