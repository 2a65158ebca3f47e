"""Retraining the winner: rebuild a trial from its stored parameters, train it on train + val
the way trials train (`automl.search.training`, with no validation data), score it on the
held-out test split, and keep the model and the scores.

Epoch rule: a trial's best epoch was found on the train split alone; the retrained model sees
train + val, so it trains for the same number of optimizer steps:
`epochs = max(1, round(best_epoch × n_train / (n_train + n_val)))` (at the same batch size).
`--epochs` overrides it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from automl.data import Dataset, load_saved_dataset
from automl.errors import SpaceError, StoreError, shown_path
from automl.storage.records import StudyRecord, TrialRecord, TrialState
from automl.storage.store import StudyStore
from automl.storage.tables import ResultTables

if TYPE_CHECKING:
    from automl.spaces import Space

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainResult:
    """One evaluated model."""

    trial: int
    source: str  # "retrain" or "checkpoint"
    seed: int
    epochs: int
    seconds: float
    metrics: dict[str, Any]
    model_path: Path
    history: tuple[dict[str, float], ...] = ()


def retrain_epochs(best_epoch: int, n_train: int, n_val: int) -> int:
    """The same number of optimizer steps on train + val as the trial's best epoch on train."""
    return max(1, round(best_epoch * n_train / (n_train + n_val)))


def retrain_study(
    study: str,
    *,
    storage: str,
    top_k: int = 1,
    epochs: int | None = None,
    seeds: int = 1,
    from_checkpoint: bool = False,
    space_path: str | None = None,
    on_result: Callable[[RetrainResult], None] | None = None,
) -> list[RetrainResult]:
    """Retrain (or score the checkpoints of) the top-k complete trials of a study.

    Args:
        study: the study name.
        storage: the storage URL.
        top_k: how many of the best complete trials. Defaults to `1`.
        epochs: epochs of retraining; None applies the epoch rule above.
        seeds: retrain each trial with seeds 0..seeds-1. Defaults to `1`.
        from_checkpoint: score each trial's best-epoch checkpoint instead of retraining.
        space_path: the space file, if it moved since the search (its hash must match).
        on_result: called after each model is scored.

    Raises:
        StoreError: no such study, no complete trial, or a missing checkpoint.
        SpaceError: the space file changed since the search.
    """
    from automl.tfruntime import import_tensorflow, set_precision

    store = StudyStore(storage)
    record = store.record(study)
    artifacts = store.artifacts(study)
    if not from_checkpoint:
        space_hash_matches(record, space_path)  # refused before anything is imported or run
    import_tensorflow()  # before the space file imports Keras, so its start-up stays quiet
    set_precision(record.settings.precision)  # trained as the search trained its trials
    trials = [t for t in record.ranked() if t.state is TrialState.COMPLETE][:top_k]
    if not trials:
        raise StoreError(f"study {study!r} has no complete trial to retrain yet; run a search.")
    dataset = study_dataset(record, artifacts.dataset_path)
    tables = ResultTables(store.url)
    results = []
    try:
        for trial in trials:
            if from_checkpoint:
                outcome = [
                    _score_checkpoint(trial, artifacts.checkpoint_path(trial.number), dataset)
                ]
            else:
                space = study_space(record, space_path)
                outcome = [
                    _retrain_one(
                        space,
                        trial,
                        dataset,
                        seed=seed,
                        epochs=epochs,
                        path=artifacts.retrain_dir / f"trial-{trial.number}-seed-{seed}.keras",
                        jit=record.settings.jit,
                    )
                    for seed in range(seeds)
                ]
            for result in outcome:
                tables.add_retrain(
                    study=study,
                    trial=result.trial,
                    source=result.source,
                    seed=result.seed,
                    epochs=result.epochs,
                    seconds=result.seconds,
                    metrics=result.metrics,
                    history=list(result.history),
                    model_path=str(result.model_path),
                    space_sha256=record.space.sha256,
                    data_sha256=dataset.sha256,
                )
                results.append(result)
                if on_result is not None:
                    on_result(result)
    finally:
        tables.close()
    return results


def study_dataset(record: StudyRecord, path: Path) -> Dataset:
    """The study's data: its saved copy, else loaded again from its source; refused when its
    hash is not the stored one (the held-out splits would not be the search's)."""
    expected = record.data.sha256
    if path.is_file():
        dataset = load_saved_dataset(path)
        if dataset.sha256 == expected:
            return dataset
    from automl.data import DataOptions, load_dataset

    options = DataOptions.from_dict(record.settings.data_options)
    dataset = load_dataset(record.data.source or "digits", options)
    if dataset.sha256 != expected:
        raise StoreError(
            f"the data of study {record.name!r} changed since the search ({dataset.source}); "
            "the test split would not be the held-out one. Restore the data or search again."
        )
    return dataset


def study_space(record: StudyRecord, space_path: str | None) -> Space:
    """The study's space, loaded only once its hash matches the stored one.

    The path comes from the store (or --space); running the file is what loading it means, so
    the hash is read first without running it: a store shared with others must not be able to
    choose which local file runs.
    """
    from automl.spaces import load_space

    path = space_hash_matches(record, space_path)
    space = load_space(path)
    if space.settings.sha256 != record.space.sha256:
        raise _space_changed(record, path)  # edited between the two reads
    return space


def space_hash_matches(record: StudyRecord, space_path: str | None) -> str:
    """The space file's path, once its hash (read without running it) is the stored one."""
    from automl.spaces import read_space_settings

    path = space_path or record.space.path
    if read_space_settings(path).sha256 != record.space.sha256:
        raise _space_changed(record, path)
    return path


def _space_changed(record: StudyRecord, path: str) -> SpaceError:
    return SpaceError(
        f"{shown_path(path)}: the space file changed since study {record.name!r} was "
        "searched; retraining needs the same file (restore it, or pass --space with the "
        "original)."
    )


def _retrain_one(
    space: Space,
    trial: TrialRecord,
    dataset: Dataset,
    *,
    seed: int,
    epochs: int | None,
    path: Path,
    jit: bool = False,
) -> RetrainResult:
    from automl.search.runner import save_model_atomically
    from automl.search.training import TrialTraining
    from automl.spaces import FixedAnswers, HyperParameters
    from automl.tfruntime import import_tensorflow

    import_tensorflow()
    import keras

    started = time.perf_counter()
    count = epochs or retrain_epochs(
        trial.best_epoch or trial.epochs_run or 1, len(dataset.train), len(dataset.val)
    )
    keras.backend.clear_session()
    hp = HyperParameters(FixedAnswers(dict(trial.params), source=f"trial {trial.number}"))
    # Train + val joined by the pipeline, not copied into one array (a folder's cache is large).
    training = TrialTraining(
        space,
        dataset,
        hp,
        train=(dataset.train, dataset.val),
        val=None,
        epochs=count,
        seed=seed,
        jit=jit,
    )
    plan = training.build()
    recorder = _History()
    training.fit(plan, callbacks=[recorder.callback()])
    save_model_atomically(plan.model, path)
    metrics = _evaluate(plan.model, dataset)
    seconds = time.perf_counter() - started
    keras.backend.clear_session()
    return RetrainResult(
        trial.number, "retrain", seed, count, seconds, metrics, path, tuple(recorder.epochs)
    )


def _score_checkpoint(trial: TrialRecord, path: Path, dataset: Dataset) -> RetrainResult:
    from automl.tfruntime import import_tensorflow

    if not path.is_file():
        raise StoreError(
            f"{shown_path(path)}: no checkpoint was kept for trial {trial.number} (a search "
            "keeps the best --keep-checkpoints trials); retrain it without --from-checkpoint."
        )
    import_tensorflow()
    import keras

    started = time.perf_counter()
    model = keras.saving.load_model(path, safe_mode=True)
    metrics = _evaluate(model, dataset)
    keras.backend.clear_session()
    return RetrainResult(
        trial.number,
        "checkpoint",
        0,
        trial.best_epoch or 0,
        time.perf_counter() - started,
        metrics,
        path,
    )


def _evaluate(model: Any, dataset: Dataset) -> dict[str, Any]:
    from automl.data.pipeline import make_pipeline
    from automl.deploy.evaluate import classification_metrics

    target = tuple(model.input_shape[1:])
    test = make_pipeline(dataset.test, batch_size=256, training=False, target_shape=target)
    probabilities = np.asarray(model.predict(test, verbose=0))
    return classification_metrics(dataset.test.y, probabilities, dataset.class_names)


class _History:
    """Per-epoch training metrics of a retraining run."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def callback(self) -> Any:
        import keras

        epochs = self.epochs

        class _Record(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                epochs.append(
                    {
                        k: float(v)
                        for k, v in (logs or {}).items()
                        if isinstance(v, (int, float, np.floating)) or hasattr(v, "__float__")
                    }
                )

        return _Record()


def best_retrained(results: Sequence[RetrainResult]) -> RetrainResult | None:
    """The best retrained model by test accuracy."""
    retrained = [r for r in results if r.source == "retrain"]
    return max(retrained, key=lambda r: r.metrics["accuracy"]) if retrained else None
