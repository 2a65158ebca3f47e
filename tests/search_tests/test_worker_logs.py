"""Worker log files stay bounded: real child processes write past the size cap through Python
(`print` to stdout and stderr) and straight to file descriptors 1 and 2 (`os.write`, as
TensorFlow's C++ logging does), and the logs are rotated to at most `<slot>.log` plus three."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO

CAP, CHUNK, LINES = 20_000, 1_000, 200

WRITER = """
import os, sys, time
from pathlib import Path
from automl.search.worker_logs import LogRotation, redirect_output

path, cap, chunk, lines = Path(sys.argv[1]), *map(int, sys.argv[2:5])
redirect_output(path, LogRotation(max_bytes=cap, keep=3, interval=0.01))
deadline = time.monotonic() + 60
for n in range(lines):
    text = f"{n:06d} " + "x" * (chunk - 8)
    match n % 4:
        case 0:
            print(text)
        case 1:
            print(text, file=sys.stderr)
        case 2:
            os.write(1, (text + "\\n").encode())
        case 3:
            os.write(2, (text + "\\n").encode())
    # Wait for the watcher to rotate a full file: each file then ends within a line of the cap,
    # however slowly the watcher gets to run on a busy machine.
    while os.fstat(1).st_size >= cap and time.monotonic() < deadline:
        time.sleep(0.005)
print("END", flush=True)
"""


def run_child(script: str, *args: object) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "" and completed.stderr == ""  # all of it went to the log


def numbers(path: Path) -> list[int]:
    return [int(line[:6]) for line in path.read_text().splitlines() if line[:6].isdigit()]


def test_logs_written_past_the_cap_rotate_and_stay_bounded(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "cpu0.log"
    run_child(WRITER, log, CAP, CHUNK, LINES)

    files = sorted(p.name for p in log.parent.iterdir())
    assert files == ["cpu0.log", "cpu0.log.1", "cpu0.log.2", "cpu0.log.3"]
    for name in files[1:]:
        size = (log.parent / name).stat().st_size
        assert CAP <= size <= CAP + CHUNK, (name, size)  # rotated when full, never far past it
    assert log.stat().st_size <= CAP + CHUNK
    assert log.read_text().endswith("END\n")
    # Oldest to newest, no line lost or repeated between the files kept, and every kind of
    # write (Python and raw descriptor, stdout and stderr) followed the rotation.
    kept = [numbers(log.parent / name) for name in ("cpu0.log.3", "cpu0.log.2", "cpu0.log.1")]
    kept.append(numbers(log))
    flat = [n for part in kept for n in part]
    assert flat == list(range(flat[0], LINES))
    assert {n % 4 for n in numbers(log.parent / "cpu0.log.1")} == {0, 1, 2, 3}


WORKER = """
import os, sys, time
from pathlib import Path
from automl.search.worker import _redirect_output

path = Path(sys.argv[1])
_redirect_output(path)
os.write(1, b"first\\n")
# Stand in for 11 MB of TensorFlow output without writing it: the file grows (sparsely)
# past the 10 MB cap through descriptor 1, and the worker's watcher must notice.
os.ftruncate(1, 11 * 2**20)
os.write(2, b"past the cap\\n")
deadline = time.monotonic() + 30
while os.fstat(1).st_size >= 10 * 2**20 and time.monotonic() < deadline:
    time.sleep(0.05)
os.write(1, b"after the rotation\\n")
"""


@pytest.mark.skipif(not hasattr(os, "ftruncate"), reason="needs ftruncate")
def test_worker_output_is_rotated_at_start_and_when_it_passes_10_mb(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "gpu0.log"
    log.parent.mkdir()
    with open(log, "wb") as old:  # a log left by earlier workers, over the cap (sparse)
        old.write(b"earlier worker\n")
        old.truncate(11 * 2**20)
    for number, text in ((1, "older"), (2, "older still"), (3, "oldest")):
        (log.parent / f"gpu0.log.{number}").write_text(text + "\n")

    run_child(WORKER, log)

    files = sorted(p.name for p in log.parent.iterdir())
    assert files == ["gpu0.log", "gpu0.log.1", "gpu0.log.2", "gpu0.log.3"]
    assert log.read_text() == "after the rotation\n"
    this_run = (log.parent / "gpu0.log.1").read_bytes()
    assert this_run.startswith(b"--- worker ") and b"first\n" in this_run
    assert this_run.endswith(b"past the cap\n")
    assert (log.parent / "gpu0.log.2").read_bytes().startswith(b"earlier worker\n")
    assert (log.parent / "gpu0.log.3").read_text() == "older\n"  # two rotations dropped two
