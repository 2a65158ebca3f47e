"""The core install, with no extra, in a fresh virtual environment: it installs only what the
core uses, and the main job runs; features of an extra that is missing say what to install.

pip takes the wheels from its cache (CI has installed the project already), so this needs the
package index only for what the cache lacks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

# Distributions that only an extra brings.
EXTRAS_ONLY = (
    "tensorboard",
    "cmaes",
    "tf2onnx",
    "onnxruntime",
    "ai-edge-litert",
    "psycopg",
    "fastapi",
    "uvicorn",
    "optuna-dashboard",
    "mlxtend",
    "pytest",
)


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("core") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # A copy of the project's sources: building in place would leave build/ in the checkout.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "automl"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, source / name)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return venv


def _installed(venv: Path) -> set[str]:
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {line.split("==")[0].lower().replace("_", "-") for line in listed.stdout.splitlines()}


@pytest.mark.slow  # 2 minutes of pip and a search: nightly (python -m pytest -m slow)
def test_the_core_install_has_no_extra_and_runs_a_search(core_venv: Path, tmp_path: Path) -> None:
    installed = _installed(core_venv)
    assert not installed & set(EXTRAS_ONLY), installed & set(EXTRAS_ONLY)
    assert {"tensorflow", "keras", "optuna", "plotly", "shtab"} <= installed
    (tmp_path / "spaces").mkdir()
    shutil.copy2(REPO / "spaces" / "cnn.py", tmp_path / "spaces" / "cnn.py")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AUTOML_STORAGE")}
    automl = str(core_venv / "bin" / "automl")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [automl, *args], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=900
        )

    search = run("search", "spaces/cnn.py", "--trials", "2", "--epochs", "1", "--workers", "2")
    assert search.returncode == 0, search.stdout[-2000:] + search.stderr[-3000:]
    assert "Study 'cnn': 2 of 2 finished" in search.stdout
    assert (tmp_path / "runs" / "cnn" / "report.html").is_file()  # plotly is core
    # Features of missing extras: one line saying what to install, nothing searched.
    tensorboard = run("search", "spaces/cnn.py", "--study", "tb", "--tensorboard", "tb")
    assert tensorboard.returncode == 2
    assert "--tensorboard needs the tensorboard package" in tensorboard.stderr
    assert "automl-keras[tensorboard]" in tensorboard.stderr
    cmaes = run("search", "spaces/cnn.py", "--study", "cma", "--sampler", "cmaes")
    assert cmaes.returncode == 2 and "automl-keras[cmaes]" in cmaes.stderr
    onnx = run("export", "cnn", "-o", "exported", "--format", "keras,onnx")
    assert onnx.returncode == 0, onnx.stderr[-2000:]
    assert "model.onnx skipped" in onnx.stdout + onnx.stderr and "[onnx]" in onnx.stdout
