"""Atomic writes: a reader sees the old file (or folder) or the new one, never a half.

Owns every atomic write of the project: bytes (`write_atomically`), a path for writers that
want one (`atomic_path`, e.g. `model.save`), and a whole folder swapped into place
(`atomic_folder`). All follow the same steps: write beside the target (same file system, so the
rename is atomic), fsync what was written, rename, then fsync the parent folder so the rename
itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from automl.errors import UsageError, shown_path

_RENAME_EXCHANGE = 2  # renameat2 flag (Linux): swap two paths in one step
_AT_FDCWD = -100


def check_output_folder(given: Path, folder: Path) -> None:
    """Refuse an output (`-o given`) whose folder is missing or not writable, before any work.

    Raises:
        UsageError: naming the path given and the folder, with the fix.
    """
    if not folder.is_dir():
        raise UsageError(
            f"-o {shown_path(given)}: the folder {shown_path(folder)} does not exist; create it "
            "or choose another path."
        )
    if not os.access(folder, os.W_OK):
        raise UsageError(
            f"-o {shown_path(given)}: cannot write in {shown_path(folder)}; choose another path."
        )


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `path` so a reader sees the old file or the new one, never half.

    Args:
        path: the file to write; its folder is created if missing.
        data: the whole new content.
        durable: fsync the data and the folder, so a power cut cannot leave an empty file or
            lose the rename; `False` skips both (for files that can be recomputed). Defaults
            to `True`.
    """
    with atomic_path(path, durable=durable) as temporary:
        temporary.write_bytes(data)


@contextlib.contextmanager
def atomic_path(path: Path, *, durable: bool = True) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block ends.

    The temporary name keeps the suffix (`.trial-3.1234.tmp.keras`), because some writers
    (Keras, NumPy) choose the file format by it. If the block raises, the temporary file is
    removed and `path` is left as it was.

    Args:
        path: the file to write; its folder is created if missing.
        durable: fsync the file before the rename and the folder after it. Defaults to `True`.

    Yields:
        The temporary path, not yet existing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield temporary
        if durable:
            _fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent)


@contextlib.contextmanager
def atomic_folder(destination: Path) -> Iterator[Path]:
    """A fresh staging folder beside `destination`, swapped into place when the block ends.

    The staging folder is `.<name>.tmp-<pid>`; what an interrupted earlier run left beside the
    destination (its process gone) is removed first. On success every file and folder staged is
    fsynced, the staging folder takes the destination's place (an existing destination is
    exchanged in one step where Linux allows it, then removed), and the parent folder is
    fsynced. If the block raises, the staging folder is removed and the destination is left as
    it was.

    Args:
        destination: the folder to replace or create; its parent must exist.

    Yields:
        The empty staging folder.
    """
    _remove_stale_staging(destination)
    staging = destination.with_name(f".{destination.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        _fsync_tree(staging)
        _swap_into_place(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync(destination.parent)


def _fsync(path: Path) -> None:
    """fsync a file or a folder (a folder's fsync makes the renames inside it durable)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):  # contents before their folder
        if path.is_file() or path.is_dir():
            _fsync(path)
    _fsync(folder)


def _remove_stale_staging(destination: Path) -> None:
    """Remove what an interrupted swap left beside the destination (its process is gone)."""
    for leftover in destination.parent.glob(f".{destination.name}.*-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(leftover, ignore_errors=True)
        except PermissionError:
            continue


def _swap_into_place(staging: Path, destination: Path) -> None:
    """Put `staging` at `destination`; an existing destination is exchanged atomically (Linux
    renameat2) and then removed, so a reader sees the old folder or the new, never neither."""
    if not destination.exists():
        os.replace(staging, destination)
        return
    if _exchange(staging, destination):
        shutil.rmtree(staging, ignore_errors=True)  # now holds the previous folder
        return
    previous = destination.with_name(f".{destination.name}.old-{os.getpid()}")
    os.replace(destination, previous)
    os.replace(staging, destination)
    shutil.rmtree(previous, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(result == 0)
