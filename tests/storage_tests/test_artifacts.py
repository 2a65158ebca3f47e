"""The artifact folder: temporary files of atomic writes left by killed processes are swept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


def test_another_hosts_temporary_files_are_never_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an artifact folder shared by several hosts, a pid of another host says nothing
    here: its writer may be alive there. Only this host's dead writers' files go."""
    from automl.storage.atomic import atomic_path

    monkeypatch.setenv("AUTOML_HOST", "node-a.cluster")
    store = ArtifactStore(tmp_path / "study")
    with atomic_path(store.root / "histories" / "trial-7.json") as temporary:
        assert "node-a-cluster" in temporary.name  # the writer's host is in the name
        temporary.write_text("[]")
    dead = 2**22 + 4321
    mine = store.root / f".trial-3.{dead}@node-a-cluster.tmp.keras"
    theirs = store.root / f".trial-4.{dead}@node-b.tmp.keras"
    for path in (mine, theirs):
        path.write_bytes(b"x")
    assert store.sweep_temporary_files() == [mine]
    assert theirs.exists()
