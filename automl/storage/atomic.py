"""Atomic writes: a reader sees the old file (or folder) or the new one, never a half.

Owns every atomic write of the project: bytes (`write_atomically`), a path for writers that
want one (`atomic_path`, e.g. `model.save`), and a whole folder swapped into place
(`atomic_folder`). All follow the same steps: write beside the target (same file system, so the
rename is atomic), fsync what was written, rename, then fsync the parent folder so the rename
itself survives a power cut.

A folder swap stages in `.<name>.tmp-<pid>/`, which holds a marker file (`STAGING_MARKER`)
written when it is created, the new folder (`new/`) and, during a swap without a one-step
exchange, the previous folder (`previous/`). A later run removes a staging folder only if its
process is gone and it holds the marker: a folder that merely looks like one is never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from automl.errors import UsageError, shown_path
from automl.lifetime import process_alive

_RENAME_EXCHANGE = 2  # renameat2 flag (Linux): swap two paths in one step
_AT_FDCWD = -100
_STAGING_INFIX = ".tmp-"

STAGING_MARKER = ".automl-staging"
"""The file that marks a staging folder as made by `atomic_folder` (and so safe to remove)."""


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
    temporary = path.with_name(f".{path.stem}.{os.getpid()}@{host_tag()}.tmp{path.suffix}")
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
    """A fresh folder to fill, swapped into the place of `destination` when the block ends.

    First, what an interrupted earlier run left beside the destination (its process gone, its
    staging folder marked as ours) is cleaned up: a previous folder it had moved aside is put
    back if the destination is missing, then the rest is removed. On success every file and
    folder staged is fsynced, the new folder takes the destination's place (an existing
    destination is exchanged in one step where Linux allows it, else moved aside into the
    staging folder first), the staging folder with the previous content is removed, and the
    parent folder is fsynced. If the block raises, the staging folder is removed and the
    destination is left as it was.

    Args:
        destination: the folder to replace or create; its parent must exist.

    Yields:
        The empty folder to fill (inside the staging folder `.<name>.tmp-<pid>`).

    Raises:
        UsageError: a folder that is not ours already has this process's staging name.
    """
    _clean_stale_staging(destination)
    staging = destination.with_name(f".{destination.name}{_STAGING_INFIX}{os.getpid()}")
    try:
        staging.mkdir()
    except FileExistsError:
        # Not ours (ours would have been marked and removed above): never reuse or remove it.
        raise UsageError(
            f"{shown_path(staging)}: a folder that automl did not make has the name it stages "
            f"{shown_path(destination)} under; move or rename it, then try again."
        ) from None
    try:
        (staging / STAGING_MARKER).write_text(
            f"automl staging folder for {destination.name}, process {os.getpid()}\n",
            encoding="utf-8",
        )
        new = staging / "new"
        new.mkdir()
        yield new
        _fsync_tree(new)
        _swap_into_place(new, destination, aside=staging / "previous")
    except BaseException:
        _restore_previous(staging, destination)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)  # with the previous folder, if there was one
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


def _clean_stale_staging(destination: Path) -> None:
    """Clean up after runs that died while swapping `destination`: only marked staging folders
    whose process is gone. A previous folder one had moved aside goes back into place when the
    destination is missing (the kill came between the two renames), so it is never lost."""
    prefix = f".{destination.name}{_STAGING_INFIX}"
    for leftover in destination.parent.iterdir():  # not glob: the name may hold [ ] * ?
        pid = leftover.name.removeprefix(prefix)
        marker = leftover / STAGING_MARKER
        if not leftover.name.startswith(prefix) or not pid.isdigit():
            continue
        if leftover.is_symlink() or marker.is_symlink():
            continue
        if not marker.is_file():
            continue  # not made by atomic_folder: perhaps the user's, never removed
        # Our own pid is in the name of a process that died before we got it (this process
        # has not staged yet); any other live process may still be swapping.
        if int(pid) != os.getpid() and process_alive(int(pid)):
            continue
        _restore_previous(leftover, destination)
        shutil.rmtree(leftover, ignore_errors=True)


def _restore_previous(staging: Path, destination: Path) -> None:
    """Put back the previous folder a swap had moved aside, if the new one never took its
    place (the swap was killed or failed between its two renames)."""
    previous = staging / "previous"
    if previous.is_dir() and not destination.exists():
        os.replace(previous, destination)


def _swap_into_place(new: Path, destination: Path, *, aside: Path) -> None:
    """Put `new` at `destination`. An existing destination is exchanged with `new` atomically
    (Linux renameat2), so a reader sees the old folder or the new, never neither; elsewhere it
    is first moved to `aside`, inside the marked staging folder, where a later run finds it."""
    if not destination.exists():
        os.replace(new, destination)
        return
    if _exchange(new, destination):
        return  # `new` now holds the previous folder, removed with the staging folder
    os.replace(destination, aside)
    os.replace(new, destination)


def _exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(result == 0)


_TEMPORARY = re.compile(r"^\..+\.(\d+)(?:@([A-Za-z0-9-]+))?\.tmp(\.[^.]*)?$")


def host_tag() -> str:
    """This host's name as temporary file names carry it (an artifact folder may be shared by
    several hosts, where a pid alone names no process)."""
    from automl.lifetime import host_name

    return re.sub(r"[^A-Za-z0-9-]", "-", host_name())[:63] or "host"


def temporary_owner(path: Path) -> int | None:
    """The PID of the process of this host that writes an `atomic_path` temporary file
    (`.NAME.PID@HOST.tmp.SUFFIX`), or None when `path` is not one, or another host's."""
    match = _TEMPORARY.match(path.name)
    if match is None or (match.group(2) is not None and match.group(2) != host_tag()):
        return None
    return int(match.group(1))
