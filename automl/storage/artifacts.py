"""The artifact folder of a study (`runs/<study>/` beside the database).

Holds the prepared dataset, per-trial histories, best-epoch checkpoints of the leading trials
(a bounded number), retrained models, exports and the report. Every file is written atomically
(`automl.storage.atomic`: a temporary file in the same folder, fsync, rename, fsync the folder).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from automl.errors import StoreError, UsageError
from automl.lifetime import SCRIPT_GUARD_FIX, holder_lock, process_alive
from automl.storage.atomic import temporary_owner, write_atomically


class ArtifactStore:
    """Paths and atomic writes under one study's folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def dataset_path(self) -> Path:
        return self.root / "dataset.npz"

    def checkpoint_path(self, number: int) -> Path:
        return self.root / "checkpoints" / f"trial-{number}.keras"

    def resume_base(self, number: int) -> Path:
        """Where a running trial keeps its resume point (`automl.search.resume`)."""
        return self.root / "resume" / f"trial-{number}"

    def history_path(self, number: int) -> Path:
        return self.root / "histories" / f"trial-{number}.json"

    def logs_dir(self, *, per_host: bool) -> Path:
        """Where workers' output goes: `logs/`, or `logs/<host>/` when several hosts may share
        this folder (their slots have the same names)."""
        from automl.storage.atomic import host_tag

        return self.root / "logs" / host_tag() if per_host else self.root / "logs"

    @property
    def retrain_dir(self) -> Path:
        return self.root / "retrain"

    @property
    def report_path(self) -> Path:
        return self.root / "report.html"

    def checkpoints(self) -> dict[int, Path]:
        folder = self.root / "checkpoints"
        found = {}
        for path in folder.glob("trial-*.keras") if folder.is_dir() else ():
            number = path.stem.removeprefix("trial-")
            if number.isdigit():
                found[int(number)] = path
        return found

    def keep_checkpoints(self, keep: Iterable[int], *, only: set[int] | None = None) -> list[int]:
        """Delete the checkpoints of trials not in `keep` (and, with `only`, in `only`);
        returns the numbers deleted."""
        wanted = set(keep)
        removed = []
        for number, path in self.checkpoints().items():
            if number not in wanted and (only is None or number in only):
                path.unlink(missing_ok=True)
                removed.append(number)
        return sorted(removed)

    def write_json(self, path: Path, data: Any, *, durable: bool = True) -> None:
        """Write JSON atomically; `durable=False` skips the fsync (for files that can be
        recomputed, like per-trial histories, where the fsync would dominate a fast trial)."""
        write_atomically(
            path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"), durable=durable
        )

    def read_json(self, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))

    def history(self, number: int) -> list[dict[str, float]] | None:
        """A trial's per-epoch metrics, if its history was written."""
        path = self.history_path(number)
        if not path.is_file():
            return None
        try:
            data = self.read_json(path)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, list) else None

    def sweep_temporary_files(self) -> list[Path]:
        """Remove the temporary files of atomic writes (`.NAME.PID@HOST.tmp*`) that a killed
        process of this host left behind (its PID no longer runs); another host's are never
        touched (a shared folder). Returns what was removed."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for path in self.root.rglob(".*.tmp*"):
            pid = temporary_owner(path)
            if pid is None or not path.is_file() or process_alive(pid):
                continue
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    @contextlib.contextmanager
    def search_lock(self) -> Iterator[None]:
        """One search at a time per study on this storage (SQLite): the second is refused."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".search.lock"
        rerun = UsageError(
            "a search was started again from inside one of its own worker processes (spawned "
            f"processes run your script's top level again); {SCRIPT_GUARD_FIX}"
        )

        def busy(holder: str) -> StoreError:
            return StoreError(
                f"study '{self.root.name}' is being searched right now ({holder}); wait for "
                "that search to end, or use --study NEW for a separate study."
            )

        with holder_lock(path, rerun_error=rerun, busy=busy):
            yield
