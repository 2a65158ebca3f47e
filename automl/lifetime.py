"""Process lifetimes: children that end with the process that started them, whether a process
still runs, and locks that name the process holding them.

Workers (started by the scheduler) and the retraining child (started by `automl search` and
`automl report --retrain`) call `exit_with_parent` first thing: a `kill -9`, SIGTERM or crash of
the parent must not leave a process behind that holds a GPU or writes to the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def exit_with_parent(parent_pid: int, *, interval: float = 0.5) -> None:
    """Die within a second when the parent dies, even `kill -9`: no orphan keeps a GPU.

    On Linux the kernel kills this process when its parent dies (`PR_SET_PDEATHSIG`); a thread
    that polls the parent's id covers other systems, and a parent that died before this call.

    Args:
        parent_pid: the process id of the parent this process must not outlive.
        interval: seconds between two looks at the parent. Defaults to `0.5`.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent_pid:
        os._exit(3)

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                os._exit(3)

    threading.Thread(target=watch, name="automl-parent-watch", daemon=True).start()


def interrupt_with_parent(parent_pid: int, *, interval: float = 0.5) -> None:
    """Interrupt this process (SIGINT, as Ctrl-C) within a second of its parent's death, even
    `kill -9`: a search started by `automl serve` then records and re-queues its running trials.

    A watching thread, not `PR_SET_PDEATHSIG`: the kernel sends that one when the parent
    *thread* that started this process ends, which a server's worker threads do while it runs.
    """
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGINT)
        return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="automl-parent-watch", daemon=True).start()


def process_alive(pid: int) -> bool:
    """Whether a process of this machine runs (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True  # no /proc (not Linux): kill(0) said it exists


def host_name() -> str:
    """This host's name as studies record it: `$AUTOML_HOST` if set (containers whose host
    names repeat, or tests simulating several hosts on one machine), else the host name."""
    import socket

    return os.environ.get("AUTOML_HOST") or socket.gethostname()


def boot_id() -> str:
    """An id of this boot of this machine (Linux); '' where unknown. A process id recorded
    under another boot id names no process of this boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def process_started(pid: int) -> int | None:
    """When process `pid` started, in clock ticks after boot (Linux); None where unknown.

    With the pid, it names one process: a pid reused by another process (PID 1 after a
    container restart) has another start time.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return int(stat.read().rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


SCRIPT_GUARD_FIX = 'put the script\'s code under if __name__ == "__main__":'


def rerunning_parent_script(holder_pid: int | None) -> bool:
    """Whether this is a spawned child of `holder_pid` running its parent's script again.

    multiprocessing's spawn runs the parent's main script (as the module `__mp_main__`) in every
    child it starts, before the child knows its parent: a script that calls automl at its top
    level, not under `if __name__ == "__main__":`, calls it again in each child. Locks the
    parent holds would then be waited on (a hang) or refused with a misleading reason.
    """
    return holder_pid == os.getppid() and "__mp_main__" in sys.modules


@contextlib.contextmanager
def holder_lock(
    path: Path,
    *,
    rerun_error: Exception,
    busy: Callable[[str], Exception] | None = None,
) -> Iterator[None]:
    """An exclusive lock on `path` for the block; the file names its holder (`pid N`).

    When another process holds it: a spawned child of the holder running the holder's script
    again (`rerunning_parent_script`) gets `rerun_error`, since waiting would never end; anyone
    else waits, or gets `busy(holder)` when `busy` is given.
    """
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            pid = holder.removeprefix("pid ")
            if rerunning_parent_script(int(pid) if pid.isdigit() else None):
                raise rerun_error from None
            if busy is not None:
                raise busy(holder or "another process") from None
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """Start spawned processes (workers, image decoders) without running the parent's
    `__main__` in them.

    multiprocessing runs the parent's main script again in every spawned child (as
    `__mp_main__`), which is why scripts need `if __name__ == "__main__":`. They need
    nothing from it (what they run is named by module, and a notebook's hypermodel travels
    pickled by value), and a Keras Tuner script written without that guard would start a
    search inside every child. Hiding the main module's spec and file while children start
    makes multiprocessing skip it.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {name: vars(main)[name] for name in ("__spec__", "__file__") if name in vars(main)}
    main.__spec__ = None
    vars(main).pop("__file__", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)
