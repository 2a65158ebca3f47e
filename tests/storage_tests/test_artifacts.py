"""The artifact folder: temporary files of atomic writes left by killed processes are swept."""

from __future__ import annotations

import os
from pathlib import Path

from automl.storage.artifacts import ArtifactStore


def test_temporary_files_of_dead_processes_are_swept_and_nothing_else(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "study")
    (store.root / "checkpoints").mkdir(parents=True)
    dead = 2**22 + 4321  # no such process
    left = [
        store.root / "checkpoints" / f".trial-3.{dead}.tmp.keras",
        store.root / f".dataset.{dead}.tmp.npz",
    ]
    kept = [
        store.root / "checkpoints" / f".trial-4.{os.getpid()}.tmp.keras",  # a live writer's
        store.root / "checkpoints" / "trial-3.keras",
        store.root / ".notes.tmp",  # not ours: no PID in the name
    ]
    for path in left + kept:
        path.write_bytes(b"x")
    assert sorted(store.sweep_temporary_files()) == sorted(left)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in left)
