"""The store contract: one set of tests, run over SQLite and over PostgreSQL (when
AUTOML_TEST_POSTGRES_URL is set; CI sets it and starts the server).

Create, resume, summaries, typed records, stale recovery, our own tables (retrains, exports),
the schema-version check of the raw SQL, and a reader beside a writer.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import pytest

from automl.data import Dataset, load_dataset
from automl.errors import StoreError
from automl.search.study import SearchStudy, StudyPlan, data_summary, this_owner
from automl.spaces.hyperparameters import Kind, ParamSpec
from automl.spaces.loader import Objective, read_space_settings
from automl.storage import attributes as keys
from automl.storage import optuna_sql
from automl.storage.attributes import (
    FailureKind,
    Owner,
    SearchSettings,
    TrialLaunch,
    TrialOutcome,
)
from automl.storage.records import TrialState
from automl.storage.store import StudyStore
from automl.storage.tables import ResultTables

from ..conftest import NO_POSTGRES, postgres_url
from ..search_tests.test_search import SPACE

POSTGRES = postgres_url()


@dataclass
class Backend:
    url: str
    study: str
    space: Path

    def store(self, *, create: bool = False) -> StudyStore:
        return StudyStore(self.url, create=create)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    if request.param == "postgresql":
        if POSTGRES is None:
            pytest.skip(NO_POSTGRES)
        url = POSTGRES
    else:
        url = f"sqlite:///{tmp_path / 'automl.db'}"
    monkeypatch.setenv("AUTOML_ARTIFACTS", str(tmp_path / "artifacts"))
    space = tmp_path / "space.py"
    space.write_text(SPACE.read_text())
    yield Backend(url, f"contract-{uuid.uuid4().hex[:10]}", space)


def plan(backend: Backend, dataset: Dataset, **changes: Any) -> StudyPlan:
    base = StudyPlan(
        name=backend.study,
        space=read_space_settings(backend.space),
        objective=Objective("score", "maximize"),
        dataset=dataset,
        settings=SearchSettings(trials=5, epochs=3, min_epochs=2, sampler="random", seed=7),
        target=5,
        slots=("cpu0", "cpu1"),
    )
    return replace(base, **changes)


def open_study(backend: Backend, dataset: Dataset, **changes: Any) -> tuple[SearchStudy, bool]:
    store = backend.store(create=True)
    return SearchStudy.open(store, plan(backend, dataset, **changes), optuna.pruners.NopPruner())


def test_create_then_resume_records_what_reproduces_the_study(
    backend: Backend, digits: Dataset
) -> None:
    study, resumed = open_study(backend, digits)
    assert not resumed
    study.record_parameters([ParamSpec(name="x", kind=Kind.FLOAT, low=0.0, high=1.0)])
    _, resumed = open_study(backend, digits, target=8)
    assert resumed
    record = backend.store().record(backend.study)
    assert record.metric == "score" and record.direction == "maximize"
    assert record.space.sha256 == read_space_settings(backend.space).sha256
    assert "def build(hp" in record.space.source
    assert [p["name"] for p in record.space.parameters] == ["x"]
    assert record.data == data_summary(digits)
    assert record.data.source == "digits" and record.data.num_classes == 10
    assert record.settings.sampler == "random" and record.settings.seed == 7
    assert record.settings.min_epochs == 2
    assert [run.target for run in record.runs] == [5, 8]
    assert record.runs[-1].slots == ("cpu0", "cpu1") and record.runs[-1].versions["optuna"]
    assert record.runs[-1].owner == this_owner() and record.runs[-1].owner.pid == os.getpid()
    assert record.runs[-1].owner.host == socket.gethostname() and record.runs[-1].owner.boot


def test_resume_refuses_another_space_objective_or_data(backend: Backend, digits: Dataset) -> None:
    open_study(backend, digits)
    backend.space.write_text(backend.space.read_text() + "\n# edited\n")
    with pytest.raises(StoreError, match=r"the space file changed .*--allow-space-change"):
        open_study(backend, digits)
    with pytest.raises(StoreError, match=r"optimises score \(maximize\), not loss"):
        open_study(backend, digits, objective=Objective("loss", "minimize"))
    study, resumed = open_study(backend, digits, allow_space_change=True)
    assert resumed
    history = study.study.user_attrs[keys.SPACE_HISTORY]
    assert len(history) == 1 and history[0] != read_space_settings(backend.space).sha256


def _run_trials(study: SearchStudy) -> None:
    """Trials in every state: complete (two), pruned, failed (died, re-queued), running."""
    from automl.search.runner import Outcome, TrialResult

    for value in (0.5, 0.9):
        trial, launch = study.launch("cpu0", search_seed=2, threads=3)
        assert (launch.seed, launch.threads) == (2_000_006 + trial.number, 3)
        trial.report(value, 1)
        result = TrialResult(
            Outcome.COMPLETE,
            {"x": value},
            [{"score": value}],
            best_epoch=1,
            best_value=value,
            params_count=42,
            timings={"total": 1.5},
        )
        assert study.finish(trial, result, 321.0) is TrialState.COMPLETE
    pruned, _ = study.launch("cpu1")
    pruned.report(0.1, 1)
    result = TrialResult(Outcome.PRUNED, {}, [{"score": 0.1}], 1, 0.1, 42)
    assert study.finish(pruned, result, 300.0) is TrialState.PRUNED
    died, _ = study.launch("cpu1")
    died.suggest_float("x", 0.0, 1.0)
    assert study.fail(died, FailureKind.DIED, "worker cpu1 died (signal 9 (SIGKILL))", epochs_run=2)
    study.launch("cpu0")  # the re-queued retry of the died trial, left RUNNING


def test_records_and_summaries_read_every_state(backend: Backend, digits: Dataset) -> None:
    study, _ = open_study(backend, digits)
    _run_trials(study)
    store = backend.store()
    record = store.record(backend.study)
    states = [t.state for t in record.trials]
    assert states == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.FAILED,
        TrialState.RUNNING,
    ]
    best = record.best()
    assert best is not None and best.number == 1 and best.value == pytest.approx(0.9)
    assert best.params_count == 42 and best.best_epoch == 1 and best.timings == {"total": 1.5}
    assert best.slot == "cpu0" and best.epochs_run == 1
    assert (best.seed, best.threads) == (2_000_007, 3)  # what a replay trains with
    assert (record.trials[2].seed, record.trials[2].threads) == (2, None)
    died = record.trials[3]
    assert died.failure == "worker cpu1 died (signal 9 (SIGKILL))" and died.epochs_run == 2
    assert record.trials[4].retry_of == 3
    outcome = TrialOutcome.from_json(study.study.trials[3].user_attrs[keys.RESULT])
    assert outcome is not None and outcome.failure_kind is FailureKind.DIED
    summary = next(s for s in store.summaries() if s.name == backend.study)
    assert summary.counts[TrialState.COMPLETE] == 2 and summary.counts[TrialState.RUNNING] == 1
    assert summary.counts[TrialState.FAILED] == 1 and summary.counts[TrialState.PRUNED] == 1
    assert summary.best_value == pytest.approx(0.9) and summary.direction == "maximize"
    assert summary.last_update is not None


def test_stale_trials_of_a_dead_scheduler_are_failed_and_requeued_once(
    backend: Backend, digits: Dataset
) -> None:
    """Owners are host + boot + pid + start time: a dead pid, a pid reused by another process
    (PID 1 after a container restart), a rebooted host, and a trial with no owner recorded are
    all stale; another host's trial is its heartbeat's to judge."""
    study, _ = open_study(backend, digits)
    me = this_owner()

    def launched(owner: Owner | None) -> int:
        trial, _ = study.launch("cpu0")
        trial.suggest_float("x", 0.0, 1.0)
        if owner is None:
            study.store.storage.set_trial_user_attr(
                study.store.storage.get_trial_id_from_study_id_trial_number(
                    study.store.storage.get_study_id_from_name(backend.study), trial.number
                ),
                keys.LAUNCH,
                None,
            )
        else:
            trial.set_user_attr(keys.LAUNCH, TrialLaunch("cpu0", owner).to_json())
        return trial.number

    dead = launched(replace(me, pid=2**22 + 12345))  # no such process
    reused = launched(replace(me, started=me.started + 1))  # this pid, another process
    rebooted = launched(replace(me, boot="another-boot"))
    alive = launched(me)
    elsewhere = launched(Owner("another-host", 1, "boot", 5))
    resumed, _ = open_study(backend, digits)
    requeued = resumed.recover_stale()
    record = backend.store().record(backend.study)
    assert sorted(requeued) == [dead, reused, rebooted]
    for number in (dead, reused, rebooted):
        assert record.trials[number].state is TrialState.FAILED
        assert record.trials[number].failure == "the scheduler stopped while it ran"
    assert record.trials[alive].state is TrialState.RUNNING
    assert record.trials[elsewhere].state is TrialState.RUNNING
    waiting = [t for t in record.trials if t.state is TrialState.WAITING]
    assert sorted(t.retry_of for t in waiting) == [dead, reused, rebooted]
    # Nothing RUNNING of a dead owner is left, and a retry is never re-queued again.
    assert resumed.recover_stale() == []
    # A search holding the study alone (SQLite, under its lock) fails every running trial.
    assert sorted(resumed.recover_stale(exclusive=True)) == [alive, elsewhere]


def test_a_trial_with_no_owner_recorded_is_stale_after_a_minute(
    backend: Backend, digits: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, _ = open_study(backend, digits)
    trial = study.study.ask()  # asked, and its scheduler killed before it recorded itself
    assert study.recover_stale() == []  # just asked: its scheduler may be recording itself
    later = datetime.datetime.now() + datetime.timedelta(seconds=61)

    class Clock(datetime.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return later

    monkeypatch.setattr("automl.search.study.datetime.datetime", Clock)
    assert study.recover_stale() == [trial.number]


def test_another_hosts_trial_is_failed_once_its_heartbeat_is_stale(
    backend: Backend, digits: Dataset
) -> None:
    """Optuna's heartbeats, recorded by the owning scheduler: when a host disappears, any host
    fails its trials after the grace period, and exactly one of them re-queues each."""
    store = StudyStore(backend.url, create=True, heartbeat_interval=1, grace_period=1)
    study, _ = SearchStudy.open(store, plan(backend, digits), optuna.pruners.NopPruner())
    trial, _ = study.launch("cpu0")  # records its first heartbeat
    trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr(keys.LAUNCH, TrialLaunch("cpu0", Owner("gone-host", 7)).to_json())
    assert study.recover_stale() == []  # its heartbeat is fresh
    time.sleep(2.2)
    other_store = StudyStore(backend.url, create=True, heartbeat_interval=1, grace_period=1)
    other, _ = SearchStudy.open(other_store, plan(backend, digits), optuna.pruners.NopPruner())
    assert other.recover_stale() == [trial.number]
    assert study.recover_stale() == []  # failed once, re-queued once
    record = backend.store().record(backend.study)
    assert record.trials[trial.number].state is TrialState.FAILED
    assert "heartbeat" in (record.trials[trial.number].failure or "")
    waiting = [t for t in record.trials if t.state is TrialState.WAITING]
    assert [t.retry_of for t in waiting] == [trial.number]


def test_run_history_is_one_row_per_run_from_concurrent_hosts(
    backend: Backend, digits: Dataset
) -> None:
    """Two hosts joining at once used to rewrite one JSON attribute: one entry was lost."""
    open_study(backend, digits)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.starmap(_join, [(backend.url, backend.study, str(backend.space), i) for i in range(8)])
    runs = backend.store().record(backend.study).runs
    assert len(runs) == 9
    assert sorted(r.target for r in runs[1:]) == list(range(100, 108))


def _join(url: str, name: str, space: str, target: int) -> None:
    backend = Backend(url, name, Path(space))
    open_study(backend, load_dataset("digits"), target=100 + target, role="worker")


def test_retrain_rows_and_exports_round_trip(backend: Backend) -> None:
    tables = ResultTables(backend.url)
    try:
        assert tables.retrains(backend.study) == []
        assert tables.exports(backend.study) == []
        row = tables.add_retrain(
            study=backend.study,
            trial=3,
            source="retrain",
            seed=1,
            epochs=4,
            seconds=2.5,
            metrics={"accuracy": 0.97, "top5": 1.0},
            history=[{"loss": 0.3}],
            model_path="runs/x/retrain/trial-3-seed-1.keras",
            space_sha256="a" * 64,
            data_sha256="b" * 64,
        )
        tables.add_export(
            study=backend.study,
            trial=3,
            source="retrained",
            directory="exported",
            formats=["keras", "tflite"],
            card={"study": backend.study},
        )
        (retrained,) = tables.retrains(backend.study)
        assert retrained.id == row and retrained.accuracy == pytest.approx(0.97)
        assert retrained.metrics["top5"] == 1.0 and retrained.history == [{"loss": 0.3}]
        (export,) = tables.exports(backend.study)
        assert export.formats == ("keras", "tflite") and export.card == {"study": backend.study}
        assert tables.retrains("another-study") == []
    finally:
        tables.close()


def test_a_store_with_an_unknown_optuna_schema_is_refused(
    backend: Backend, digits: Dataset
) -> None:
    from sqlalchemy import create_engine, text

    open_study(backend, digits)
    engine = create_engine(backend.url)
    try:
        with engine.connect() as connection:
            optuna_sql.check_schema(connection, "the store")  # the version Optuna wrote
            connection.execute(text("UPDATE version_info SET schema_version = 99"))
            with pytest.raises(StoreError, match=r"Optuna schema version 99.*upgrade automl"):
                optuna_sql.study_summaries(connection, "the store")
            connection.execute(text("UPDATE version_info SET schema_version = 11"))
            with pytest.raises(StoreError, match=r"optuna storage upgrade --storage the store"):
                optuna_sql.check_schema(connection, "the store")
            connection.rollback()  # the store is left as it was
    finally:
        engine.dispose()


def test_the_sql_reads_the_schema_of_the_installed_optuna() -> None:
    # Private on purpose: this is the test that fails when Optuna changes its tables, so that
    # the raw SQL of automl.storage.optuna_sql is checked against the new schema.
    from optuna.storages._rdb import models

    assert models.SCHEMA_VERSION in optuna_sql.KNOWN_SCHEMA_VERSIONS


def _write_trials(url: str, study: str, count: int, ready: Any) -> None:
    storage = optuna.storages.RDBStorage(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    target = optuna.load_study(study_name=study, storage=storage)
    ready.set()
    for index in range(count):
        trial = target.ask()
        trial.report(index / count, 1)
        target.tell(trial, index / count)


def test_a_reader_beside_a_writer_never_fails(backend: Backend, digits: Dataset) -> None:
    open_study(backend, digits)
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    writer = context.Process(target=_write_trials, args=(backend.url, backend.study, 40, ready))
    writer.start()
    assert ready.wait(60)
    store = backend.store()
    seen = []
    while writer.is_alive():
        summary = next(s for s in store.summaries() if s.name == backend.study)
        seen.append(summary.counts[TrialState.COMPLETE])
        assert store.record(backend.study).finished >= seen[-1]
    writer.join(60)
    assert writer.exitcode == 0
    assert seen == sorted(seen)  # counts only grow
    assert backend.store().record(backend.study).finished == 40


def test_a_reader_that_looks_while_the_study_is_being_created_reads_it(
    backend: Backend, digits: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader (the service, a test polling the store) asks for a study that a starting search
    creates between the reader's two looks: it reads the new study, not a bare KeyError."""
    store = backend.store(create=True)
    lookup = store.storage.get_study_id_from_name
    calls = []

    def created_meanwhile(name: str) -> int:
        calls.append(name)
        if len(calls) == 1:
            open_study(backend, digits)  # the search creates it just after this look
            raise KeyError("Record does not exist.")
        return lookup(name)

    monkeypatch.setattr(store.storage, "get_study_id_from_name", created_meanwhile)
    assert store.record(backend.study).finished == 0
    with pytest.raises(StoreError, match=r"no study named 'missing'"):
        backend.store().record("missing")


def test_a_host_that_finds_the_study_created_meanwhile_joins_it_or_is_refused(
    backend: Backend, digits: Dataset, tmp_path: Path
) -> None:
    """Two hosts start together: both see no study, one creates it first; the other joins it
    when it is the same search, and is refused with the fix when its space differs."""
    store = backend.store(create=True)
    late = SearchStudy.prepare(store, plan(backend, digits), optuna.pruners.NopPruner())
    assert not late.created
    open_study(backend, digits)  # the other host wins the race
    late.create()
    assert late.created and late.resumed
    other_space = tmp_path / "other.py"
    other_space.write_text(backend.space.read_text() + "\n# edited\n")
    refused = SearchStudy.prepare(
        backend.store(create=True),
        replace(plan(backend, digits), name=backend.study + "-b"),
        optuna.pruners.NopPruner(),
    )
    SearchStudy.open(
        backend.store(create=True),
        replace(
            plan(backend, digits), name=backend.study + "-b", space=read_space_settings(other_space)
        ),
        optuna.pruners.NopPruner(),
    )
    with pytest.raises(StoreError, match=r"space file changed.*--study NEW"):
        refused.create()
    runs = backend.store().record(backend.study).runs
    assert len(runs) == 2  # both hosts' runs recorded


def test_the_finisher_waits_for_other_hosts_trials_and_gives_up_its_claim_when_interrupted(
    backend: Backend, digits: Dataset
) -> None:
    """One host per study retrains and reports: the first to claim it. Interrupted while it
    waits for another host's running trial, it releases the claim for a later run."""
    import signal

    from automl.errors import Interrupted
    from automl.search.events import NullObserver
    from automl.search.run import _elect_finisher

    store = StudyStore(backend.url, create=True, heartbeat_interval=60)
    study, _ = SearchStudy.open(store, plan(backend, digits), optuna.pruners.NopPruner())
    other, _ = study.launch("cpu0")  # another host's trial, with a fresh heartbeat
    other.set_user_attr(keys.LAUNCH, TrialLaunch("cpu0", Owner("host-b", 5)).to_json())
    with pytest.raises(Interrupted):
        _elect_finisher(store, study, 5, NullObserver(), interrupted=lambda: signal.SIGINT)
    tables = store.tables()
    try:  # released: the next claim succeeds, the one after names its holder
        assert tables.claim(backend.study, "finish:5", this_owner()) is None
        assert tables.claim(backend.study, "finish:5", Owner("host-c", 9)) == this_owner()
    finally:
        tables.close()
    assert _elect_finisher(store, study, 5, NullObserver()) == this_owner()


def test_our_tables_are_created_by_hosts_starting_together(backend: Backend) -> None:
    """Two hosts' first runs on a new database both create the automl_ tables: PostgreSQL
    refused the second CREATE TABLE (a fresh-clone CI run caught it). Both must go on."""
    from automl.storage.urls import check_storage_url

    url = check_storage_url(backend.url)
    if url.startswith("postgresql"):
        schema = f"fresh_{uuid.uuid4().hex[:8]}"
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        engine.dispose()
        url = f"{url}?options=-csearch_path%3D{schema}"
    start = time.time() + 4.0  # every process creates the tables at this moment
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        pool.starmap(_create_tables, [(url, start)] * 6)
    tables = ResultTables(url)
    try:
        assert tables.runs("none") == []
    finally:
        tables.close()


def _create_tables(url: str, start: float) -> None:
    tables = ResultTables(url)
    try:
        tables.engine.connect().close()  # connected before the moment
        time.sleep(max(0.0, start - time.time()))
        tables.create()
    finally:
        tables.close()
