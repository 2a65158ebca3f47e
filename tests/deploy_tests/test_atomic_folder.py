"""The folder swap under every export (`automl.storage.atomic.atomic_folder`): what it leaves
after a kill, and what it never removes.

These live with the deploy tests because export is the folder swap's only user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from automl.storage.atomic import atomic_folder

from ..conftest import REPO


def _dead_pid() -> int:
    """The id of a process that has exited (so a leftover named after it looks stale)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _killed_midway(destination: Path, *, fallback: bool = False) -> int:
    """Run `atomic_folder(destination)` in a child that dies (`os._exit`) inside it: while
    staging, or, with `fallback`, between the two renames of the swap used where the one-step
    exchange is not available. Returns the child's process id."""
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from automl.storage import atomic

        destination = Path({str(destination)!r})
        if {fallback!r}:
            atomic._exchange = lambda a, b: False
            replace = os.replace
            calls = []

            def dying_replace(a, b):
                calls.append(a)
                replace(a, b)
                if len(calls) == 1:
                    os._exit(9)  # the old folder is aside, the new one not yet in place

            atomic.os.replace = dying_replace
        with atomic.atomic_folder(destination) as staging:
            (staging / "model.txt").write_text("new")
            if not {fallback!r}:
                os._exit(9)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.run([sys.executable, "-c", script], env=env, timeout=120)
    assert process.returncode == 9
    # The child's pid is in the name of the staging folder it left.
    (leftover,) = destination.parent.glob(f".{destination.name}.tmp-*")
    return int(leftover.name.rsplit("-", 1)[-1])


def test_a_look_alike_of_a_staging_folder_is_never_removed(tmp_path: Path) -> None:
    """A user's folder that merely matches the staging name pattern (and names a process that
    is gone) is not ours: it is left as it is."""
    destination = tmp_path / "exported"
    look_alike = tmp_path / f".exported.tmp-{_dead_pid()}"
    look_alike.mkdir()
    (look_alike / "important.txt").write_text("mine")
    other = tmp_path / f".exported.old-{_dead_pid()}"
    other.mkdir()
    (other / "important.txt").write_text("mine too")
    with atomic_folder(destination) as staging:
        (staging / "model.txt").write_text("new")
    assert _files(destination) == {"model.txt": "new"}
    assert _files(look_alike) == {"important.txt": "mine"}
    assert _files(other) == {"important.txt": "mine too"}


def test_a_staging_folder_left_by_a_killed_run_is_removed(tmp_path: Path) -> None:
    destination = tmp_path / "exported"
    destination.mkdir()
    (destination / "model.txt").write_text("old")
    pid = _killed_midway(destination)
    assert _files(destination) == {"model.txt": "old"}
    assert (tmp_path / f".exported.tmp-{pid}").is_dir()
    with atomic_folder(destination) as staging:
        (staging / "model.txt").write_text("newer")
    assert _files(destination) == {"model.txt": "newer"}
    assert sorted(os.listdir(tmp_path)) == ["exported"]


def test_a_swap_killed_between_its_renames_gives_back_the_previous_folder(tmp_path: Path) -> None:
    """Where the one-step exchange is not available, the old folder is moved aside before the
    new one takes its place; a kill in between leaves no destination at all, and the next run
    puts the previous complete folder back before anything else (F7)."""
    destination = tmp_path / "exported"
    destination.mkdir()
    (destination / "model.txt").write_text("old")
    _killed_midway(destination, fallback=True)
    assert not destination.exists()
    with pytest.raises(RuntimeError), atomic_folder(destination):
        assert _files(destination) == {"model.txt": "old"}  # restored before the block runs
        raise RuntimeError("this export fails")
    assert _files(destination) == {"model.txt": "old"}
    assert sorted(os.listdir(tmp_path)) == ["exported"]


def test_a_failing_block_leaves_the_destination_and_no_staging(tmp_path: Path) -> None:
    destination = tmp_path / "exported"
    destination.mkdir()
    (destination / "model.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(destination) as staging:
        (staging / "model.txt").write_text("half")
        raise RuntimeError("this export fails")
    assert _files(destination) == {"model.txt": "old"}
    assert sorted(os.listdir(tmp_path)) == ["exported"]


def test_another_destinations_staging_is_left_alone(tmp_path: Path) -> None:
    """Leftovers are matched by exact name, not by a glob: `exp[1]` does not claim the staging
    folder of `exp1` (which `.exp[1].tmp-*` would match as a pattern)."""
    other = tmp_path / "exp1"
    pid = _killed_midway(other)
    with atomic_folder(tmp_path / "exp[1]") as staging:
        (staging / "model.txt").write_text("new")
    assert (tmp_path / f".exp1.tmp-{pid}").is_dir()
