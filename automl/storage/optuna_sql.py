"""The only raw SQL on Optuna's tables: the aggregate read behind `automl studies`.

Loading every trial through Optuna's storage API to count them makes `automl studies` slow on
large studies, so one aggregate query per table reads the counts, best values and last updates
instead. The queries are written for Optuna's RDB schema version `KNOWN_SCHEMA_VERSIONS`
(`version_info.schema_version`); a store with another version is refused with a clear error
rather than misread. Everything else goes through Optuna's public storage API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from automl.errors import StoreError
from automl.storage.records import StudySummary, TrialState

# Optuna's RDB schema versions whose tables these queries read (Optuna 3.2 to 5.x: 12). A new
# Optuna that changes its tables bumps the version: the test suite compares this with the
# installed Optuna's, and a store written by it is refused instead of misread.
KNOWN_SCHEMA_VERSIONS = (12,)

STATES = {
    "COMPLETE": TrialState.COMPLETE,
    "PRUNED": TrialState.PRUNED,
    "FAIL": TrialState.FAILED,
    "RUNNING": TrialState.RUNNING,
    "WAITING": TrialState.WAITING,
}


class StoreNotReady(StoreError):
    """The store's tables do not exist yet (a search that just started is creating them)."""


def check_schema(connection: Any, shown_url: str) -> None:
    """Refuse a store whose Optuna schema these queries were not written for.

    Raises:
        StoreNotReady: the tables are not there yet.
        StoreError: another schema version.
    """
    from sqlalchemy import inspect, text

    inspector = inspect(connection)
    if connection.dialect.name != "sqlite" and not inspector.has_table("studies"):
        # A server database with no tables: nothing was ever searched there. (A SQLite file
        # without tables is one a search is creating right now: it makes the file first.)
        raise StoreError(
            f"no study store in {shown_url} yet (nothing has been searched there); run "
            "automl search with this --storage first."
        )
    has_version = inspector.has_table("version_info")
    version = (
        connection.execute(text("SELECT schema_version FROM version_info")).scalar()
        if has_version
        else None
    )
    if version is None:  # Optuna writes the version row last when it creates a store
        raise StoreNotReady(
            f"the study store {shown_url} is still being created by a search that just "
            "started; try again in a moment."
        )
    if version in KNOWN_SCHEMA_VERSIONS:
        return
    known = ", ".join(str(v) for v in KNOWN_SCHEMA_VERSIONS)
    if int(version) < min(KNOWN_SCHEMA_VERSIONS):
        fix = f"upgrade the store with `optuna storage upgrade --storage {shown_url}`"
    else:
        fix = "upgrade automl (pip install -U automl-keras)"
    raise StoreError(
        f"the study store {shown_url} has Optuna schema version {version}, which this automl "
        f"does not read (it reads {known}); {fix}."
    )


def study_summaries(connection: Any, shown_url: str) -> list[StudySummary]:
    """Name, trials by state, best value and last update of every study, in name order."""
    from sqlalchemy import text

    check_schema(connection, shown_url)
    names: dict[int, str] = {
        int(row[0]): str(row[1])
        for row in connection.execute(text("SELECT study_id, study_name FROM studies"))
    }
    maximize = {
        study_id: str(direction).upper().endswith("MAXIMIZE")
        for study_id, direction in connection.execute(
            text("SELECT study_id, direction FROM study_directions WHERE objective = 0")
        )
    }
    counts = {i: dict.fromkeys(TrialState, 0) for i in names}
    last: dict[int, datetime | None] = dict.fromkeys(names)
    grouped = connection.execute(
        text(
            "SELECT study_id, state, COUNT(*), MAX(datetime_complete), MAX(datetime_start) "
            "FROM trials GROUP BY study_id, state"
        )
    )
    for study_id, state, count, completed, started in grouped:
        if study_id not in counts:
            continue
        counts[study_id][STATES[str(state).rsplit(".", 1)[-1]]] += int(count)
        moment = _as_datetime(completed or started)
        previous = last[study_id]
        if moment is not None and (previous is None or moment > previous):
            last[study_id] = moment
    extremes = connection.execute(
        text(
            "SELECT t.study_id, MAX(v.value), MIN(v.value) FROM trials t "
            "JOIN trial_values v ON v.trial_id = t.trial_id "
            "WHERE t.state = 'COMPLETE' AND v.objective = 0 GROUP BY t.study_id"
        )
    )
    best: dict[int, float | None] = dict.fromkeys(names)
    for study_id, high, low in extremes:
        if study_id in names:
            best[study_id] = high if maximize.get(study_id, True) else low
    return sorted(
        (
            StudySummary(
                name=name,
                counts=counts[study_id],
                best_value=best[study_id],
                direction="maximize" if maximize.get(study_id, True) else "minimize",
                last_update=last[study_id],
            )
            for study_id, name in names.items()
        ),
        key=lambda s: s.name,
    )


def _as_datetime(value: Any) -> datetime | None:
    """SQLite returns timestamps as text from raw SQL; other databases as datetimes."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
