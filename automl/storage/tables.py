"""Tables of our own in the study database (SQLAlchemy 2.0 models, `automl_` prefix).

Optuna's tables are never touched directly; what Optuna has no place for — retrained models and
their test scores, exports, the run history, study-wide job locks — lives here, next to them, in
the same database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    inspect,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from automl.storage.attributes import Owner, RunEntry

CREATE_ATTEMPTS = 6  # ~1.5 s of retries while another process creates the same tables


class Base(DeclarativeBase):
    pass


class RetrainRow(Base):
    """One evaluated model of a trial: retrained on train + val, or its search checkpoint."""

    __tablename__ = "automl_retrain_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study: Mapped[str] = mapped_column(String(128), index=True)
    trial: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))  # "retrain" or "checkpoint"
    seed: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    accuracy: Mapped[float] = mapped_column(Float)
    metrics_json: Mapped[str] = mapped_column(Text)
    history_json: Mapped[str] = mapped_column(Text, default="[]")
    model_path: Mapped[str] = mapped_column(Text, default="")
    space_sha256: Mapped[str] = mapped_column(String(64), default="")
    data_sha256: Mapped[str] = mapped_column(String(64), default="")
    created: Mapped[datetime] = mapped_column(DateTime)


class ExportRow(Base):
    """One export of a study's model."""

    __tablename__ = "automl_exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study: Mapped[str] = mapped_column(String(128), index=True)
    trial: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    directory: Mapped[str] = mapped_column(Text)
    formats: Mapped[str] = mapped_column(Text)
    card_json: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime)


class RunRow(Base):
    """One run of `automl search` or `automl worker` on a study: one insert per run, so hosts
    that start together never lose each other's entries."""

    __tablename__ = "automl_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study: Mapped[str] = mapped_column(String(128), index=True)
    started: Mapped[float] = mapped_column(Float)
    entry_json: Mapped[str] = mapped_column(Text)  # attributes.RunEntry


class LockRow(Base):
    """A study-wide job that one host does (retraining and the report at the end of a
    search): the host whose insert succeeds does it; the others read who does."""

    __tablename__ = "automl_locks"
    __table_args__ = (UniqueConstraint("study", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    holder_json: Mapped[str] = mapped_column(Text)  # attributes.Owner
    created: Mapped[datetime] = mapped_column(DateTime)


@dataclass(frozen=True)
class RetrainRecord:
    """Read model of a `RetrainRow` (what reports and export read)."""

    id: int
    study: str
    trial: int
    source: str
    seed: int
    epochs: int
    seconds: float
    accuracy: float
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    model_path: str
    created: datetime


@dataclass(frozen=True)
class RetrainedTrial:
    """One trial's retrained models (the latest per seed) and their mean test accuracy."""

    trial: int
    runs: tuple[RetrainRecord, ...]

    @property
    def mean_accuracy(self) -> float:
        return sum(r.accuracy for r in self.runs) / len(self.runs)

    @property
    def std_accuracy(self) -> float:
        mean = self.mean_accuracy
        return float(sum((r.accuracy - mean) ** 2 for r in self.runs) / len(self.runs)) ** 0.5


def retrained_trials(retrains: Sequence[RetrainRecord]) -> list[RetrainedTrial]:
    """Each retrained trial with its latest model per seed (seed order), best mean first.

    This is the winner's-curse-aware choice when several trials were retrained (`automl
    retrain --top-k K`): their search values are one noisy measurement each, so the trial kept
    is the one whose retrained models score best on average, not the one whose single
    validation value was highest. Ties keep the order of `retrains` (newest first).
    """
    latest: dict[int, dict[int, RetrainRecord]] = {}
    for run in retrains:  # newest first
        if run.source == "retrain":
            latest.setdefault(run.trial, {}).setdefault(run.seed, run)
    trials = [
        RetrainedTrial(trial, tuple(by_seed[s] for s in sorted(by_seed)))
        for trial, by_seed in latest.items()
    ]
    return sorted(trials, key=lambda t: -t.mean_accuracy)


def chosen_retrained(
    retrains: Sequence[RetrainRecord], search_best: int | None
) -> RetrainedTrial | None:
    """The retrained trial that reports and export use: the best mean among the retrained
    trials when the search's best trial is one of them; None otherwise (none was retrained, or
    the search found its best after the retraining, so it has no retrained model yet)."""
    trials = retrained_trials(retrains)
    if not trials:
        return None
    if any(t.trial == search_best for t in trials):
        return trials[0]
    return None


@dataclass(frozen=True)
class ExportRecord:
    """Read model of an `ExportRow`."""

    id: int
    study: str
    trial: int
    source: str
    directory: str
    formats: tuple[str, ...]
    card: dict[str, Any]
    created: datetime


class ResultTables:
    """Reads and writes our tables in the study database.

    Args:
        url: the storage URL (the same database as the Optuna study).
    """

    def __init__(self, url: str) -> None:
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 60}
        self.engine: Engine = create_engine(url, **kwargs)

    def create(self) -> None:
        """Create our tables if missing. Hosts starting together on a new database create
        them at once: the one that loses the race finds them made, and checks again."""
        import time

        from sqlalchemy.exc import SQLAlchemyError

        from automl.storage.store import creation_collision

        for attempt in range(CREATE_ATTEMPTS):
            try:
                Base.metadata.create_all(self.engine)
                return
            except SQLAlchemyError as exc:
                if attempt == CREATE_ATTEMPTS - 1 or not creation_collision(exc):
                    raise
                time.sleep(0.05 * 2**attempt)

    def _exists(self, table: str) -> bool:
        return inspect(self.engine).has_table(table)

    def add_retrain(
        self,
        *,
        study: str,
        trial: int,
        source: str,
        seed: int,
        epochs: int,
        seconds: float,
        metrics: dict[str, Any],
        history: list[dict[str, float]],
        model_path: str,
        space_sha256: str,
        data_sha256: str,
    ) -> int:
        self.create()
        row = RetrainRow(
            study=study,
            trial=trial,
            source=source,
            seed=seed,
            epochs=epochs,
            seconds=seconds,
            accuracy=float(metrics["accuracy"]),
            metrics_json=json.dumps(metrics),
            history_json=json.dumps(history),
            model_path=model_path,
            space_sha256=space_sha256,
            data_sha256=data_sha256,
            created=datetime.now(timezone.utc).replace(tzinfo=None),
        )
        with Session(self.engine) as session:
            session.add(row)
            session.commit()
            return int(row.id)

    def retrains(self, study: str) -> list[RetrainRecord]:
        """Every evaluated model of a study, newest first (empty if there is none yet)."""
        if not self._exists(RetrainRow.__tablename__):
            return []
        with Session(self.engine) as session:
            rows = session.scalars(
                select(RetrainRow).where(RetrainRow.study == study).order_by(RetrainRow.id.desc())
            ).all()
            return [
                RetrainRecord(
                    id=row.id,
                    study=row.study,
                    trial=row.trial,
                    source=row.source,
                    seed=row.seed,
                    epochs=row.epochs,
                    seconds=row.seconds,
                    accuracy=row.accuracy,
                    metrics=json.loads(row.metrics_json),
                    history=json.loads(row.history_json or "[]"),
                    model_path=row.model_path,
                    created=row.created,
                )
                for row in rows
            ]

    def add_export(
        self,
        *,
        study: str,
        trial: int,
        source: str,
        directory: str,
        formats: list[str],
        card: dict[str, Any],
    ) -> None:
        self.create()
        with Session(self.engine) as session:
            session.add(
                ExportRow(
                    study=study,
                    trial=trial,
                    source=source,
                    directory=directory,
                    formats=",".join(formats),
                    card_json=json.dumps(card),
                    created=datetime.now(timezone.utc).replace(tzinfo=None),
                )
            )
            session.commit()

    def exports(self, study: str) -> list[ExportRecord]:
        """Every export of a study, newest first (empty if there is none yet)."""
        if not self._exists(ExportRow.__tablename__):
            return []
        with Session(self.engine) as session:
            rows = session.scalars(
                select(ExportRow).where(ExportRow.study == study).order_by(ExportRow.id.desc())
            ).all()
            return [
                ExportRecord(
                    id=row.id,
                    study=row.study,
                    trial=row.trial,
                    source=row.source,
                    directory=row.directory,
                    formats=tuple(f for f in row.formats.split(",") if f),
                    card=json.loads(row.card_json),
                    created=row.created,
                )
                for row in rows
            ]

    def add_run(self, study: str, entry: RunEntry) -> None:
        """Append one run to a study's run history."""
        self.create()
        with Session(self.engine) as session:
            session.add(
                RunRow(study=study, started=entry.started, entry_json=json.dumps(entry.to_json()))
            )
            session.commit()

    def runs(self, study: str) -> list[RunEntry]:
        """A study's runs, oldest first (empty if there is none yet)."""
        if not self._exists(RunRow.__tablename__):
            return []
        with Session(self.engine) as session:
            rows = session.scalars(
                select(RunRow).where(RunRow.study == study).order_by(RunRow.started, RunRow.id)
            ).all()
            return [RunEntry.from_json(json.loads(row.entry_json)) for row in rows]

    def claim(self, study: str, name: str, holder: Owner) -> Owner | None:
        """Take the study-wide job `name` for `holder`: None if taken now, else who has it."""
        self.create()
        with Session(self.engine) as session:
            session.add(
                LockRow(
                    study=study,
                    name=name,
                    holder_json=json.dumps(holder.to_json()),
                    created=datetime.now(timezone.utc).replace(tzinfo=None),
                )
            )
            try:
                session.commit()
                return None
            except IntegrityError:
                session.rollback()
        with Session(self.engine) as session:
            row = session.scalars(
                select(LockRow).where(LockRow.study == study, LockRow.name == name)
            ).one()
            return Owner.from_json(json.loads(row.holder_json)) or Owner()

    def release(self, study: str, name: str) -> None:
        """Give up the study-wide job `name` (its holder was interrupted before doing it)."""
        with Session(self.engine) as session:
            session.execute(delete(LockRow).where(LockRow.study == study, LockRow.name == name))
            session.commit()

    def forget(self, study: str) -> None:
        """Delete every row of `study` from our tables (the study itself is being deleted)."""
        from sqlalchemy import delete

        with Session(self.engine) as session, session.begin():
            for row in (RetrainRow, ExportRow, RunRow, LockRow):
                if self._exists(row.__tablename__):
                    session.execute(delete(row).where(row.study == study))

    def close(self) -> None:
        self.engine.dispose()
