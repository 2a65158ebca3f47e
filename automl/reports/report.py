"""Writing a study's report: read the records (read-only), render, write atomically."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from automl.errors import UsageError, shown_path
from automl.storage.atomic import check_output_folder, write_atomically
from automl.storage.store import StudyStore
from automl.storage.tables import ResultTables


def write_report(study: str, *, storage: str, output: str | os.PathLike[str] | None = None) -> Path:
    """Render the study's report to `output` (default `runs/<study>/report.html`).

    Raises:
        StoreError: no store or no such study.
        UsageError: the output folder does not exist or is not writable.
    """
    store = StudyStore(storage)
    record = store.record(study)
    tables = ResultTables(store.url)
    try:
        retrains = tables.retrains(study)
    finally:
        tables.close()
    path = Path(output) if output is not None else store.artifacts(study).report_path
    _check_output(path, default=output is None)
    from automl.reports.render import render_report

    page = render_report(record, retrains, generated=datetime.now(), storage=store.shown_url)
    write_atomically(path, page.encode("utf-8"))
    return path


def _check_output(path: Path, *, default: bool) -> None:
    folder = path.parent
    if default:
        folder.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise UsageError(f"-o {shown_path(path)}: is a folder; give a file name like report.html.")
    check_output_folder(path, folder)
