"""The study store: Optuna's `RDBStorage` over SQLAlchemy (SQLite by default, PostgreSQL for
several machines), plus the attributes that make a study reproducible.

The database stays a standard Optuna database (the `optuna` CLI and optuna-dashboard read it);
our own facts live in study and trial user attributes under `automl:` keys, as JSON.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl.errors import StoreError, one_line
from automl.storage import attributes as keys
from automl.storage import optuna_sql
from automl.storage.artifacts import ArtifactStore
from automl.storage.attributes import RunEntry, TrialLaunch, TrialOutcome
from automl.storage.optuna_sql import StoreNotReady
from automl.storage.records import StudyRecord, StudySummary, TrialRecord, TrialState
from automl.storage.urls import check_storage_url, check_study_name, redact_text, redact_url

if TYPE_CHECKING:
    import optuna

    from automl.storage.tables import ResultTables

log = logging.getLogger(__name__)

OPEN_ATTEMPTS = 7  # opening a store another process is creating: ~3 s of retries in all


class StudyStore:
    """Opens a storage URL and gives studies, records and artifact folders.

    Args:
        url: an SQLAlchemy URL.
        create: create the database (and, for the default location, its folder) if missing;
            readers pass False and never write. Defaults to `False`.
        create_folder: create the folder of a SQLite file. Defaults to `False`.
        heartbeat_interval: seconds between heartbeats of running trials, so that another
            host can fail the trials of a scheduler that disappeared; None for none.
            Defaults to `None`.
        grace_period: seconds without a heartbeat after which a running trial is stale.
            Defaults to 3 heartbeat intervals.
    """

    def __init__(
        self,
        url: str,
        *,
        create: bool = False,
        create_folder: bool = False,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
    ) -> None:
        self.shown_url = redact_url(url)
        sqlite_path = _sqlite_path(url) if url.startswith("sqlite") else None
        if sqlite_path is not None and not create and not sqlite_path.exists():
            raise StoreError(
                f"no study store at {sqlite_path} (nothing has been searched there yet); "
                "run automl search first, or pass --storage / set AUTOML_STORAGE."
            )
        self.url = check_storage_url(url, create_folder=create_folder)
        self.sqlite_path = _sqlite_path(self.url)
        self._create = create
        self._heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period or (3 * heartbeat_interval if heartbeat_interval else 0)
        # Trials this process failed for a stale heartbeat (Optuna's callback), to re-queue.
        self._stale_failed: list[optuna.trial.FrozenTrial] = []
        self._storage: Any = None
        # What `record` keeps between reads: the study (Optuna caches its finished trials) and
        # the finished trials' records, by (name, study id).
        self._studies: dict[tuple[str, int], optuna.Study] = {}
        self._finished_records: dict[tuple[str, int], dict[int, TrialRecord]] = {}
        if create:
            self._storage = self._open(create, heartbeat_interval)

    @property
    def heartbeats(self) -> bool:
        """Whether running trials record heartbeats (the store was opened with an interval)."""
        return bool(self._heartbeat_interval)

    @property
    def heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval

    @property
    def storage(self) -> Any:
        """Optuna's `RDBStorage` (opened on first use: listing studies does not need it)."""
        if self._storage is None:
            self._storage = self._open(self._create, self._heartbeat_interval)
        return self._storage

    def _open(self, create: bool, heartbeat_interval: int | None) -> Any:
        import optuna
        import sqlalchemy.exc

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        engine_kwargs = _engine_kwargs(self.sqlite_path)

        def rdb_storage() -> Any:
            if self.sqlite_path is not None and create:
                _enable_wal(self.sqlite_path)
            if not create:
                self._check_schema()
            with warnings.catch_warnings():
                # Heartbeats are an experimental argument of Optuna's; they are what it offers
                # to fail the trials of a process that disappeared.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    self.url,
                    engine_kwargs=engine_kwargs,
                    skip_table_creation=not create,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=self.grace_period or None,
                    heartbeat_stale_trial_callback=(
                        self._note_stale if heartbeat_interval else None
                    ),
                )

        try:
            for attempt in range(OPEN_ATTEMPTS - 1):
                try:
                    return rdb_storage()
                except (sqlite3.Error, sqlalchemy.exc.SQLAlchemyError, StoreNotReady) as exc:
                    # Another process is creating the same new store (two searches started
                    # together, or a reader polling one that just started): its tables, its
                    # schema version row or its WAL switch collide with ours. Once it is done
                    # the store is complete, so open it again.
                    if not creation_collision(exc):
                        raise
                    time.sleep(0.05 * 2**attempt)
            return rdb_storage()
        except StoreError:
            raise
        except ImportError as exc:
            raise StoreError(
                f"{self.shown_url}: the database driver is not installed; for PostgreSQL run "
                "pip install 'automl-keras[postgres]'."
            ) from exc
        except (
            sqlite3.Error,
            sqlalchemy.exc.SQLAlchemyError,
            optuna.exceptions.OptunaError,
            RuntimeError,
            ValueError,
        ) as exc:
            raise StoreError(
                f"cannot open the study store {self.shown_url}: "
                f"{redact_text(one_line(exc, 300), self.url)}"
            ) from exc

    def _note_stale(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._stale_failed.append(trial)

    def take_stale_failed(self) -> list[optuna.trial.FrozenTrial]:
        """The trials this process failed for a stale heartbeat since the last call (each is
        failed by exactly one process: Optuna refuses to end a trial twice)."""
        taken, self._stale_failed = self._stale_failed, []
        return taken

    def _reading_engine(self) -> Any:
        """An engine for our own reads. On SQLite its connections are read-only: closing the
        last connection to a WAL database would otherwise checkpoint it (rewrite the file), and
        a reader never writes the store."""
        import sqlite3

        from sqlalchemy import create_engine

        if self.sqlite_path is None:
            return create_engine(self.url, **_engine_kwargs(None))
        uri = f"{self.sqlite_path.as_uri()}?mode=ro"
        return create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=60)
        )

    def _check_schema(self) -> None:
        """A reader checks that the store is complete and of a schema it reads before Optuna
        opens it (Optuna would fail on a store a search is still creating)."""
        engine = self._reading_engine()
        try:
            with engine.connect() as connection:
                optuna_sql.check_schema(connection, self.shown_url)
        finally:
            engine.dispose()

    # -- studies ----------------------------------------------------------------------------

    def study_names(self) -> list[str]:
        return sorted(s.study_name for s in self.storage.get_all_studies())

    def read_study(self, name: str) -> optuna.Study:
        """The Optuna study `record(name)` reads through, with its trials cached (each
        `optuna.load_study` would read them all again)."""
        return self._cached_study(name)[0]

    def _cached_study(self, name: str) -> tuple[optuna.Study, int]:
        """The study kept between reads, and its id; the error lists the studies if none."""
        import optuna

        check_study_name(name)
        try:
            study_id = self.storage.get_study_id_from_name(name)
        except KeyError:
            self.load_study(name)  # raises the error that lists the studies
            # A search created it between the two looks: read it.
            study_id = self.storage.get_study_id_from_name(name)
        key = (name, study_id)
        study = self._studies.get(key)
        if study is None:
            study = optuna.load_study(study_name=name, storage=self.storage)
            self._studies[key] = study
        return study, study_id

    def load_study(self, name: str) -> optuna.Study:
        """An existing study; the error lists the studies that exist."""
        import optuna

        check_study_name(name)
        try:
            return optuna.load_study(study_name=name, storage=self.storage)
        except KeyError as exc:
            names = self.study_names()
            listed = ", ".join(names) if names else "none yet"
            raise StoreError(
                f"no study named {name!r} in {self.shown_url}; studies there: {listed}."
            ) from exc

    def delete_study(self, name: str) -> bool:
        """Delete a study and its rows in our tables (its artifact folder is the caller's).

        Returns:
            Whether there was such a study.
        """
        import optuna

        from automl.storage.tables import ResultTables

        check_study_name(name)
        try:
            optuna.delete_study(study_name=name, storage=self.storage)
        except KeyError:
            return False
        self._studies = {k: v for k, v in self._studies.items() if k[0] != name}
        self._finished_records = {k: v for k, v in self._finished_records.items() if k[0] != name}
        tables = ResultTables(self.url)
        try:
            tables.forget(name)
        finally:
            tables.close()
        return True

    def summaries(self) -> list[StudySummary]:
        """Name, trials by state, best value and last update of every study.

        Read-only aggregate SQL (`optuna_sql`), without importing Optuna or loading any trial,
        so `automl studies` stays fast however large the studies are.
        """
        import sqlalchemy.exc

        engine = self._reading_engine()
        try:
            with engine.connect() as connection:
                return optuna_sql.study_summaries(connection, self.shown_url)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"cannot read the study store {self.shown_url}: "
                f"{redact_text(one_line(exc, 200), self.url)}"
            ) from exc
        finally:
            engine.dispose()

    def record(self, name: str) -> StudyRecord:
        """The read model of a study.

        A store kept open (the service) reads again only what changed since its last read:
        Optuna's cached storage re-reads unfinished and new trials only, and finished trials
        are converted once.
        """
        study, study_id = self._cached_study(name)
        key = (name, study_id)
        attrs = self.storage.get_study_user_attrs(study_id)
        directions = self.storage.get_study_directions(study_id)
        objective = keys.StoredObjective.from_json(
            attrs.get(keys.OBJECTIVE),
            direction="maximize" if directions[0].name == "MAXIMIZE" else "minimize",
        )
        converted = self._finished_records.setdefault(key, {})
        records = []
        for trial in study.get_trials(deepcopy=False):
            if trial.state.is_finished():
                found = converted.get(trial.number)
                if found is None:
                    found = converted[trial.number] = trial_record(trial)
                records.append(found)
            else:
                records.append(trial_record(trial))
        return StudyRecord(
            name=name,
            metric=objective.metric,
            direction=objective.direction,
            space=keys.SpaceProvenance.from_json(attrs.get(keys.SPACE)),
            data=keys.DataSummary.from_json(attrs.get(keys.DATA)),
            settings=keys.SearchSettings.from_json(attrs.get(keys.SETTINGS)),
            runs=(*keys.runs_from_json(attrs.get(keys.RUNS)), *self.runs(name)),
            trials=tuple(records),
        )

    def tables(self) -> ResultTables:
        """Our own tables in this database (run history, locks, retrains, exports)."""
        from automl.storage.tables import ResultTables

        return ResultTables(self.url)

    def runs(self, name: str) -> tuple[RunEntry, ...]:
        """The run history of a study (rows of `automl_runs`)."""
        tables = self.tables()
        try:
            return tuple(tables.runs(name))
        finally:
            tables.close()

    def add_run(self, name: str, entry: RunEntry) -> None:
        """Append one run to a study's history: one insert, never a rewrite of the list."""
        tables = self.tables()
        try:
            tables.add_run(name, entry)
        finally:
            tables.close()

    def artifacts(self, name: str) -> ArtifactStore:
        """The artifact folder of a study: `runs/<study>/` beside a SQLite database."""
        check_study_name(name)
        if self.sqlite_path is not None:
            base = self.sqlite_path.parent
        else:
            base = Path(os.environ.get("AUTOML_ARTIFACTS", "runs"))
        return ArtifactStore(base / name)


def trial_record(trial: optuna.trial.FrozenTrial) -> TrialRecord:
    """A `TrialRecord` from an Optuna `FrozenTrial`."""
    attrs = trial.user_attrs
    outcome = TrialOutcome.from_json(attrs.get(keys.RESULT))
    launch = TrialLaunch.from_json(attrs.get(keys.LAUNCH))
    state = optuna_sql.STATES[trial.state.name]
    intermediate = {int(step): float(v) for step, v in trial.intermediate_values.items()}
    return TrialRecord(
        number=trial.number,
        state=state,
        value=trial.value if state.finished else None,
        params=dict(trial.params),
        intermediate=intermediate,
        best_epoch=outcome.best_epoch if outcome else None,
        epochs_run=outcome.epochs_run if outcome else max(intermediate, default=0),
        params_count=outcome.params_count if outcome else None,
        best_val_loss=outcome.best_val_loss if outcome else None,
        started=trial.datetime_start,
        completed=trial.datetime_complete,
        slot=launch.slot if launch else None,
        failure=(
            outcome.failure if outcome else NO_HEARTBEAT if state is TrialState.FAILED else None
        ),
        retry_of=attrs.get(keys.RETRY_OF),
        timings=dict(outcome.timings) if outcome else {},
        resumed_epoch=launch.resumed_epoch if launch else None,
        seed=launch.seed if launch else None,
        threads=launch.threads if launch else None,
    )


# A trial failed with no outcome recorded: Optuna's heartbeat check failed it (its scheduler
# could not record anything: it was gone).
NO_HEARTBEAT = "no heartbeat from its scheduler for the grace period (its host or process stopped)"


def _engine_kwargs(sqlite_path: Path | None) -> dict[str, Any]:
    if sqlite_path is not None:
        # A long busy timeout: readers and the writer never fail with "database is locked".
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database).expanduser().resolve()


def creation_collision(exc: BaseException) -> bool:
    """Whether `exc` is what two processes creating one new store at once run into."""
    import sqlalchemy.exc

    if isinstance(exc, (sqlalchemy.exc.IntegrityError, StoreNotReady)):
        return True  # both wrote the schema version row; or a reader came too early
    cause = getattr(exc, "orig", None) or exc
    sqlstate = getattr(cause, "sqlstate", None)  # PostgreSQL (psycopg)
    if sqlstate is not None:
        return str(sqlstate) in _PG_CREATION_COLLISIONS
    if isinstance(cause, sqlite3.Error):
        code = getattr(cause, "sqlite_errorcode", None)  # Python 3.11+
        if code in (getattr(sqlite3, "SQLITE_BUSY", 5), getattr(sqlite3, "SQLITE_LOCKED", 6)):
            return True
        # SQLite reports "table … already exists" and "no such table" (a creator's CREATE or a
        # reader's query racing another creator) only as its generic SQLITE_ERROR: no code or
        # type tells them apart, so here, and only here, the message is read.
        text = str(cause).lower()
        return any(
            phrase in text for phrase in ("already exists", "no such table", "database is locked")
        )
    return False


# duplicate_table, unique_violation (concurrent CREATE TABLE), duplicate_object
_PG_CREATION_COLLISIONS = frozenset({"42P07", "23505", "42710"})


def _enable_wal(path: Path) -> None:
    """WAL lets readers (`automl show`, reports) read while the search writes."""
    connection = sqlite3.connect(path, timeout=60)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
