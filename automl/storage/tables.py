"""Tables of our own in the study database (SQLAlchemy 2.0 models, `automl_` prefix).

Optuna's tables are never touched directly; what Optuna has no place for — retrained models and
their test scores, exports — lives here, next to them, in the same database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime, Float, Integer, String, Text, create_engine, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


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
        Base.metadata.create_all(self.engine)

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

    def close(self) -> None:
        self.engine.dispose()
