"""Shared fixtures: small space files written on the fly, and a quiet TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = Path(__file__).resolve().parent.parent


def postgres_url() -> str | None:
    """The test PostgreSQL server (`AUTOML_TEST_POSTGRES_URL`, which CI sets); None locally
    without one, and a failure where CI requires it (`AUTOML_REQUIRE_POSTGRES=1`)."""
    url = os.environ.get("AUTOML_TEST_POSTGRES_URL")
    if url is None and os.environ.get("AUTOML_REQUIRE_POSTGRES") == "1":
        pytest.fail(
            "AUTOML_TEST_POSTGRES_URL is not set (CI starts a PostgreSQL server)", pytrace=False
        )
    return url


NO_POSTGRES = "no PostgreSQL server configured (set AUTOML_TEST_POSTGRES_URL)"
SPACES = REPO / "spaces"


def run_script(script: Path, *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a user's Python script as `python script.py` from its folder, with this checkout
    importable; its output captured."""
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=script.parent,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=timeout,
    )


@pytest.fixture
def write_space(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a space file from dedented text; returns its path."""

    def write(text: str, name: str = "space.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture(autouse=True, scope="session")
def image_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image cache of folder sources goes to a temporary folder, not the user's home (the
    subprocesses tests start inherit it)."""
    folder = tmp_path_factory.mktemp("automl-cache")
    os.environ["AUTOML_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def tf() -> object:
    from automl.tfruntime import import_tensorflow

    return import_tensorflow()
