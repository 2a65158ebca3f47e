"""Hand-made study records for report tests (reports read records only)."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any

from automl.storage.attributes import DataSummary, SearchSettings, SpaceProvenance
from automl.storage.records import StudyRecord, TrialRecord, TrialState
from automl.storage.tables import RetrainRecord

ORIGIN = datetime(2026, 11, 1, 12, 0, 0)


def make_trial(
    number: int, state: TrialState, value: float | None = None, **fields: Any
) -> TrialRecord:
    epochs = fields.pop("epochs", 3 if state is not TrialState.PRUNED else 1)
    curve = fields.pop("curve", None)
    if curve is None and value is not None:
        curve = [value - 0.1 * (epochs - e) for e in range(1, epochs + 1)]
    started = ORIGIN + timedelta(seconds=10 * number)
    return TrialRecord(
        number=number,
        state=state,
        value=value,
        params=fields.pop(
            "params",
            {
                "lr": 10 ** (-1 - number % 3),
                "units": 16 * (1 + number % 4),
                "optimizer": ["adam", "sgd"][number % 2],
            },
        ),
        intermediate={e + 1: v for e, v in enumerate(curve or [])},
        best_epoch=fields.pop("best_epoch", epochs if value is not None else None),
        epochs_run=epochs,
        params_count=fields.pop("params_count", 1000 + number),
        started=started,
        completed=None if state is TrialState.RUNNING else started + timedelta(seconds=8),
        slot=fields.pop("slot", f"cpu{number % 2}"),
        failure=fields.pop("failure", None),
        **fields,
    )


def make_record(trials: list[TrialRecord], name: str = "cnn", **fields: Any) -> StudyRecord:
    return StudyRecord(
        name=name,
        metric=fields.pop("metric", "val_accuracy"),
        direction=fields.pop("direction", "maximize"),
        space=fields.pop(
            "space",
            SpaceProvenance("spaces/cnn.py", "ab" * 32, "def build(hp): ..."),
        ),
        data=fields.pop(
            "data",
            DataSummary(
                source="digits",
                input_shape=(8, 8, 1),
                num_classes=3,
                class_names=("a", "b", "c"),
                sizes={"train": 60, "val": 20, "test": 20},
            ),
        ),
        settings=fields.pop(
            "settings", SearchSettings(epochs=3, sampler="tpe", pruner="hyperband")
        ),
        trials=tuple(trials),
        **fields,
    )


def many_trials(count: int, params: int = 12, seed: int = 0) -> StudyRecord:
    rng = random.Random(seed)
    trials = []
    for number in range(count):
        state = rng.choice(
            [TrialState.COMPLETE] * 3 + [TrialState.PRUNED] * 6 + [TrialState.FAILED]
        )
        epochs = 9 if state is TrialState.COMPLETE else rng.choice([1, 3])
        value = None if state is TrialState.FAILED else rng.random()
        curve = [min(1.0, (value or 0.5) * (0.6 + 0.4 * e / epochs)) for e in range(1, epochs + 1)]
        names = [f"param_{i}" for i in range(params)]
        values = {
            n: (rng.random() if i % 3 else rng.choice(["a", "b", "c"])) for i, n in enumerate(names)
        }
        trials.append(
            make_trial(
                number,
                state,
                value,
                epochs=epochs,
                curve=curve,
                params=values,
                failure="boom" if value is None else None,
            )
        )
    return make_record(trials, name="big")


def make_retrain(
    trial: int,
    accuracy: float,
    seed: int = 0,
    source: str = "retrain",
    classes: tuple[str, ...] = ("a", "b", "c"),
) -> RetrainRecord:
    n = len(classes)
    return RetrainRecord(
        id=seed + 1,
        study="cnn",
        trial=trial,
        source=source,
        seed=seed,
        epochs=3,
        seconds=4.2,
        accuracy=accuracy,
        metrics={
            "accuracy": accuracy,
            "macro_precision": accuracy,
            "macro_recall": accuracy,
            "macro_f1": accuracy,
            "confusion_matrix": [[5 if i == j else 1 for j in range(n)] for i in range(n)],
            "per_class": [
                {"class": c, "precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 7}
                for c in classes
            ],
        },
        history=[{"loss": 1.0 / e, "accuracy": 1 - 1.0 / (e + 1)} for e in range(1, 4)],
        model_path=f"runs/cnn/retrain/trial-{trial}-seed-{seed}.keras",
        created=ORIGIN,
    )


def isfinite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
