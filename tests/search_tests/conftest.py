"""Fixtures of the search tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working folder with its own store and a copy of the function space."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOML_STORAGE", raising=False)
    for name in ("AUTOML_TEST_LOG", "AUTOML_TEST_DELAY", "AUTOML_TEST_FAIL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "space.py").write_text(Path(__file__).with_name("function_space.py").read_text())
    yield tmp_path
