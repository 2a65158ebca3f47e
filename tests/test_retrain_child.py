"""The retraining child that `automl search` and `automl report --retrain` start: a real
process, whose command line holds no storage URL, and that ends when its parent is killed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces): state, ppid, …
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


PARENT = """
import sys
from automl.cli.common import make_console
from automl.cli.retrain_command import retrain_in_subprocess
retrain_in_subprocess(make_console(), "study", sys.argv[1])
"""


@pytest.fixture
def locked_store(tmp_path: Path) -> Iterator[str]:
    """A SQLite store held under an exclusive lock: a retraining child opening it waits (up to
    its 60 s busy timeout), so it is alive when its parent is killed."""
    path = tmp_path / "locked.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("CREATE TABLE t (x)")
    connection.execute("BEGIN EXCLUSIVE")
    try:
        yield f"sqlite:///{path}"
    finally:
        connection.close()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_retraining_child_dies_with_its_parent(locked_store: str, signum: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AUTOML_STORAGE"}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, locked_store],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child = None
    try:
        deadline = time.monotonic() + 60
        while child is None and time.monotonic() < deadline:
            for pid in _children(parent.pid):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"retrain" in cmdline:
                    child = pid
                    # The URL travels in the environment: the command line holds none of it.
                    assert not any(b"locked.db" in part for part in cmdline), cmdline
                    assert b"--storage" not in cmdline
            time.sleep(0.1)
        assert child is not None, "the retraining child did not start"
        time.sleep(3)  # let it get as far as waiting for the store
        assert _alive(child)
        os.kill(parent.pid, signum)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the retraining child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
