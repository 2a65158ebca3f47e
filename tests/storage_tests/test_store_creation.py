"""Several processes creating the same new SQLite store at once: two `automl search` commands
started together in one folder (the default store, runs/automl.db, is shared by every study),
or a reader (`automl show`, `automl studies`) polling while a search creates the store."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from automl.storage.store import StudyStore

PROCESSES = 4
ROUNDS = 4


def _open(url: str, create: bool, barrier: Any, results: Any) -> None:
    from automl.errors import AutoMLError

    barrier.wait()
    try:
        store = StudyStore(url, create=create)
        store.storage.get_all_studies()
        results.put("ok")
    except AutoMLError as exc:
        results.put(str(exc))
    except BaseException as exc:  # a raw traceback is a failure too: report it, do not hang
        results.put(f"{type(exc).__name__}: {exc}")


def test_searches_and_readers_creating_one_store_at_once_all_succeed(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    outcomes: list[str] = []
    for round_ in range(ROUNDS):
        database = tmp_path / f"round{round_}" / "automl.db"
        database.parent.mkdir()
        database.touch()  # readers refuse a missing file; this one is empty, as when just created
        url = f"sqlite:///{database}"
        barrier, results = context.Barrier(PROCESSES), context.Queue()
        # Three creators (searches) and one reader.
        processes = [
            context.Process(target=_open, args=(url, index < 3, barrier, results))
            for index in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        outcomes += [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=30)
        # The store works for whoever comes next.
        StudyStore(url, create=True).storage.create_new_study([], "after")
    failures = [o for o in outcomes if o != "ok"]
    # A reader may be told, in one line, that the store is still being created; nothing else.
    assert all("is still being created" in f for f in failures), failures
    assert len(failures) <= ROUNDS
