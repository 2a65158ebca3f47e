"""`automl trial` end to end, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from automl.cli import main

from .conftest import REPO
from .images import make_folder


def automl(
    *args: str, env: dict[str, str] | None = None, timeout: int = 600, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "automl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


def test_default_cnn_reaches_95_percent_on_digits_in_5_epochs() -> None:
    result = automl("trial", "spaces/cnn.py", "--epochs", "5")
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"^epoch +\d", result.stdout, re.MULTILINE)) == 5
    best = float(re.search(r"Best val_accuracy ([0-9.]+)", result.stdout).group(1))  # type: ignore[union-attr]
    assert best >= 0.95
    assert result.stderr == ""


def test_a_trial_seed_over_numpys_range_trains() -> None:
    # `automl search --seed 5000` gives trial n the seed 5000 * 1_000_003 + n, over 2**32 - 1,
    # which NumPy's global seed refuses: every trial failed with "Seed must be between 0 and
    # 2**32 - 1" until the seed was folded into NumPy's range.
    result = automl("trial", "spaces/cnn.py", "--epochs", "1", "--seed", str(5000 * 1_000_003))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Best val_accuracy" in result.stdout


def test_image_folder_with_a_corrupt_file(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "photos", per_class=8)
    broken = folder / "dog" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    refused = automl("trial", "spaces/cnn.py", "--data", str(folder), "--epochs", "1")
    assert refused.returncode == 2
    assert str(broken) in refused.stderr or "dog/broken.png" in refused.stderr
    assert "--skip-bad-images" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    accepted = automl(
        "trial", "spaces/cnn.py", "--data", str(folder), "--epochs", "1", "--skip-bad-images"
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "data: skipped 1 bad file(s)" in accepted.stdout
    assert "data: converted 8 grayscale image(s) to RGB" in accepted.stdout
    assert "Best val_accuracy" in accepted.stdout


def test_params_are_used_and_unknown_ones_noted(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "trial",
            "spaces/cnn.py",
            "--epochs",
            "1",
            "--params",
            '{"depth": 1, "filters": 16, "dense_units": 0, "deepth": 3}',
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"depth\s+│\s+1\b", out)
    assert "note: --params 'deepth' was not used" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--params", "{depth: 3}"], "--params: not valid JSON"),
        (["--params", "[1, 2]"], "--params: must be a JSON object"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--params", '{"depth": 9}'], "value 9 given for 'depth' is not in Int [1, 4]"),
    ],
)
def test_bad_trial_input(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trial", "spaces/cnn.py", *args])
    captured = capsys.readouterr()
    if "value 9" in message:  # a value outside the space fails that trial, not the command line
        assert code == 1 and message in captured.out
    else:
        assert code == 2 and message in captured.err
