"""`automl trial --replay STUDY:N` after a `--deterministic` search, as a user runs them.

The space has every source of randomness a real one has: initial weights, augmentation,
dropout, the shuffling of batches. The search runs one worker (all the CPUs' threads, where
TensorFlow's reductions are split across threads) and the replay must give the stored
per-epoch curve exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from automl.errors import UsageError
from automl.search.replay import compare_curves, parse_target

from ..conftest import REPO

SPACE = """
import keras
from keras import layers

EPOCHS = 3

def build(hp):
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.RandomTranslation(0.1, 0.1),
        layers.Conv2D(hp.Int("filters", 4, 16, step=4), 3, activation="relu"),
        layers.Flatten(),
        layers.Dropout(hp.Float("dropout", 0.1, 0.5)),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
"""


def automl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "automl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A deterministic search of 3 trials (the folder and the space file)."""
    folder = tmp_path_factory.mktemp("replay")
    space = folder / "space.py"
    space.write_text(SPACE.lstrip(), encoding="utf-8")
    result = automl(
        "search",
        str(space),
        "--trials",
        "3",
        "--workers",
        "1",
        "--pruner",
        "none",
        "--deterministic",
        "--no-retrain",
        "--storage",
        "sqlite:///s.db",
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    return folder, space


def stored_curve(folder: Path, number: int) -> dict[str, float]:
    shown = automl("show", "space", "--json", "--storage", "sqlite:///s.db", cwd=folder)
    assert shown.returncode == 0, shown.stderr
    (trial,) = [t for t in json.loads(shown.stdout)["trials"] if t["number"] == number]
    assert trial["seed"] == number  # search seed 0: trial N has seed N
    return dict(trial["intermediate"])


def test_a_replay_reproduces_the_stored_curve_exactly(searched: tuple[Path, Path]) -> None:
    folder, _ = searched
    stored = stored_curve(folder, 2)  # its worker ran two trials before it
    assert len(stored) == 3
    result = automl("trial", "--replay", "space:2", "--storage", "sqlite:///s.db", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "seed 2, 3 of 3 epochs" in result.stdout
    assert "deterministic" in result.stdout
    assert "The replay reproduced the stored val_accuracy curve exactly (3 epochs)." in (
        result.stdout
    )
    # The per-epoch lines print the same values the store holds.
    shown = [
        float(line.split("val_accuracy ")[1].split()[0])
        for line in result.stdout.splitlines()
        if line.startswith("epoch ")
    ]
    assert shown == pytest.approx([stored[str(e)] for e in (1, 2, 3)], abs=5e-5)


def test_a_replay_with_another_seed_differs_and_says_where(searched: tuple[Path, Path]) -> None:
    """The check can fail: the same trial with the next trial's seed is not its curve."""
    from automl.search.replay import plan_replay, replay_trial
    from automl.storage.store import StudyStore

    folder, _ = searched
    url = f"sqlite:///{folder / 's.db'}"
    plan = plan_replay(StudyStore(url), "space", 1)
    other = replay_trial(replace(plan, seed=plan.seed + 1))
    replayed = {i: e["val_accuracy"] for i, e in enumerate(other.history, start=1)}
    comparison = compare_curves(plan.trial.intermediate, replayed)
    assert not comparison.exact
    assert comparison.first_difference == 1
    assert comparison.largest > 0


def test_a_replay_refuses_an_edited_space_and_flags_it_reads_from_the_store(
    searched: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, space = searched
    moved = tmp_path / "edited.py"
    moved.write_text(space.read_text() + "\n# edited\n", encoding="utf-8")
    edited = automl(
        "trial", str(moved), "--replay", "space:0", "--storage", "sqlite:///s.db", cwd=folder
    )
    assert edited.returncode == 2
    assert "the space file changed since study 'space' was searched" in edited.stderr
    assert len(edited.stderr.strip().splitlines()) == 1
    seeded = automl(
        "trial", "--replay", "space:0", "--seed", "3", "--storage", "sqlite:///s.db", cwd=folder
    )
    assert seeded.returncode == 2
    assert "reads --seed from the store" in seeded.stderr
    missing = automl("trial", "--replay", "space:7", "--storage", "sqlite:///s.db", cwd=folder)
    assert missing.returncode != 0
    assert "study 'space' has no trial 7 (its trials are 0–2)" in missing.stderr


@pytest.mark.parametrize("text", ["cnn", "cnn:", ":3", "cnn:x", "cnn:-1"])
def test_a_replay_target_must_be_study_colon_number(text: str) -> None:
    with pytest.raises(UsageError, match="expected STUDY:N"):
        parse_target(text)


def test_parse_target_keeps_colons_in_the_study_name() -> None:
    assert parse_target("a:b:12") == ("a:b", 12)


def test_compare_curves() -> None:
    same: Callable[[dict[int, float]], dict[int, float]] = dict
    curve = {1: 0.5, 2: 0.75, 3: 0.8}
    assert compare_curves(curve, same(curve)).exact
    differs = compare_curves(curve, {1: 0.5, 2: 0.7, 3: 0.9})
    assert (differs.first_difference, round(differs.largest, 6)) == (2, 0.1)
    shorter = compare_curves(curve, {1: 0.5, 2: 0.75})
    assert shorter.first_difference == 3
