"""The search displays: a rich live display on a terminal, plain lines elsewhere, and quiet."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from automl.cli.progress import LiveProgress, PlainProgress, QuietProgress, make_progress
from automl.search import SearchConfig, run_search

from .search_tests.test_search import SPACE, fake_gpus


@pytest.fixture
def space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOML_STORAGE", raising=False)
    (tmp_path / "space.py").write_text(SPACE.read_text())
    return tmp_path


def _search(progress: object) -> None:
    run_search(
        SearchConfig(space="space.py", trials=6, executor="function", epochs=3, workers=2),
        progress,
        gpu_probe=fake_gpus(0),
        cpus=2,
    )  # type: ignore[arg-type]


def test_live_display_on_a_terminal(space: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    progress = make_progress(console, quiet=False)
    assert isinstance(progress, LiveProgress)
    _search(progress)
    progress.close()
    out = buffer.getvalue()
    assert "New study 'space'" in out
    assert "6/6" in out  # the progress bar reached the target
    assert "top 5" in out and "best score" in out
    assert "cpu0" in out and "cpu1" in out


def test_plain_lines_in_logs(space: Path) -> None:
    buffer = io.StringIO()
    progress = make_progress(Console(file=buffer, force_terminal=False, width=200), quiet=False)
    assert isinstance(progress, PlainProgress)
    _search(progress)
    lines = [line for line in buffer.getvalue().splitlines() if line.startswith("[")]
    assert len(lines) == 6 and lines[-1].startswith("[6/6] trial")
    assert "\x1b[" not in buffer.getvalue()  # no terminal escape codes in logs


def test_quiet(space: Path) -> None:
    buffer = io.StringIO()
    progress = make_progress(Console(file=buffer, width=200), quiet=True)
    assert isinstance(progress, QuietProgress)
    _search(progress)
    assert buffer.getvalue() == ""
