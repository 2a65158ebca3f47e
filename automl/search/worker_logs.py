"""A worker's log file: the process's stdout and stderr, Python's and C++'s, kept bounded.

TensorFlow's C++ logging writes to file descriptors 1 and 2 directly, so the redirection and the
rotation happen at the descriptor level: both descriptors point at `<slot>.log`; a log over the
cap is rotated when a worker starts, and a watcher thread rotates it while the worker runs
(rename `<slot>.log` → `.1` → `.2` → `.3`, the oldest dropped; then point both descriptors at
a fresh file). A file ends within one check interval's output of the cap.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LogRotation:
    """How big a log may grow and how many earlier ones are kept.

    Attributes:
        max_bytes: rotate once the log reaches this size. Defaults to 10 MiB.
        keep: rotated logs kept (`<slot>.log.1` … `.keep`). Defaults to `3`.
        interval: seconds between two looks at the log's size. Defaults to `1.0`.
    """

    max_bytes: int = 10 * 2**20
    keep: int = 3
    interval: float = 1.0


def redirect_output(path: Path, rotation: LogRotation | None = None) -> None:
    """Point this process's stdout and stderr (descriptors 1 and 2, and `sys.stdout` and
    `sys.stderr` on them) at `path`, rotated as `rotation` says, for the rest of its life."""
    rotation = rotation or LogRotation()
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size >= rotation.max_bytes:
            rotate_files(path, rotation.keep)
    _point_output_at(path)
    # On the descriptors themselves, not on a file object of their own: after a rotation
    # Python's writes follow the descriptors to the new file.
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(  # noqa: SIM115
        2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False
    )
    threading.Thread(
        target=_watch, args=(path, rotation), name="automl-log-rotation", daemon=True
    ).start()


def rotate_files(path: Path, keep: int) -> None:
    """`path.{keep-1}` → `path.{keep}`, …, `path` → `path.1` (the oldest is replaced)."""
    for number in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{number}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{number + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))


def _point_output_at(path: Path) -> None:
    # O_APPEND: descriptors 1 and 2 share one offset at the end, whoever writes.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def _watch(path: Path, rotation: LogRotation) -> None:
    while True:
        time.sleep(rotation.interval)
        try:
            if os.fstat(1).st_size >= rotation.max_bytes:
                # Writes between the rename and dup2 land at the end of the renamed file.
                rotate_files(path, rotation.keep)
                _point_output_at(path)
        except OSError:
            pass  # a full disk or a removed folder must not end the worker: try again later
