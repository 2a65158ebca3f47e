"""The library API: `automl` re-exports its entry points cheaply, and they run a session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import automl

from .conftest import REPO, run_script
from .search_tests.test_search import SPACE, fake_gpus


def test_import_is_cheap_and_every_exported_name_resolves() -> None:
    code = (
        "import sys, automl\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'optuna', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert "HEAVY []" in result.stdout
    for name in automl.__all__:
        assert getattr(automl, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        automl.nothing  # noqa: B018


def test_a_library_session_searches_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOML_STORAGE", raising=False)
    (tmp_path / "space.py").write_text(SPACE.read_text())
    config = automl.SearchConfig(space="space.py", trials=3, executor="function", epochs=3)
    summary = automl.run_search(config, gpu_probe=fake_gpus(0))
    assert summary.record.finished == 3 and summary.study == "space"
    report = automl.write_report(summary.study, storage=summary.storage_url)
    assert report == tmp_path / "runs" / "space" / "report.html"
    assert "automl study: space" in report.read_text()
    with pytest.raises(automl.AutoMLError, match="no study named 'nope'"):
        automl.write_report("nope", storage=summary.storage_url)


def test_a_script_without_a_main_guard_just_works(tmp_path: Path) -> None:
    """Workers are spawned without running the parent's main script again, so a search at a
    script's top level (as Keras Tuner scripts are written) runs once and returns."""
    (tmp_path / "space.py").write_text(SPACE.read_text())
    script = tmp_path / "tune.py"
    script.write_text(
        "import automl\n"
        "automl.run_search(automl.SearchConfig(space='space.py', trials=2, executor='function',"
        " epochs=1, workers=2, max_failures=2))\n"
        "print('SEARCHED')\n"
    )
    result = run_script(script, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("SEARCHED") == 1
    assert "started again" not in result.stderr
