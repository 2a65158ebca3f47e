"""Exporting a study's model: choosing it, checking the arguments, and writing every chosen format
(`automl.deploy.formats`) with a model card (`automl.deploy.card`) into one folder.

The model is the retrained winner when there is one, else the best trial's best-epoch
checkpoint. Augmentation layers are removed first (`automl.deploy.strip`), so every inference
graph is free of them. Each format is loaded back and run on test images; a float format whose
outputs differ from the Keras model by more than `FLOAT_TOLERANCE` fails the export. The folder
is written beside the destination and swapped into place only when complete
(`automl.storage.atomic`): an interrupted or failed export leaves the previous one intact.

The destination is replaced only if it is missing, empty, or an earlier export (recognised by
its model card, holding nothing the card does not list); the working folder, the store and the
study's artifacts, and any folder holding them, are refused. Anything else is refused before any
work, with nothing touched: an export never deletes what it did not write.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from automl.deploy.card import export_entries, model_card, read_card, write_card
from automl.deploy.formats import (
    FORMATS,
    QUANTIZATIONS,
    Format,
    FormatUnavailable,
    WriteRequest,
)
from automl.deploy.strip import float32_model, load_trained, strip_augmentation
from automl.errors import ExportError, StoreError, UsageError, shown_path
from automl.storage.atomic import atomic_folder, check_output_folder
from automl.storage.records import StudyRecord, TrialState
from automl.storage.store import StudyStore
from automl.storage.tables import ResultTables, chosen_retrained

if TYPE_CHECKING:
    from automl.data.dataset import Dataset

FLOAT_TOLERANCE = 1e-4
PARITY_BATCH = 64
ACCURACY_BATCH = 256


@dataclass(frozen=True)
class ModelSource:
    """Which model an export starts from."""

    trial: int
    kind: str  # "retrained" or "checkpoint"
    path: Path
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportResult:
    """What was written and how closely each format matches the Keras model."""

    directory: Path
    source: ModelSource
    files: dict[str, str]
    parity: dict[str, float]
    card: dict[str, Any]
    notes: tuple[str, ...] = ()


def export_study(
    study: str,
    *,
    storage: str,
    output: str | os.PathLike[str],
    trial: int | None = None,
    formats: Sequence[str] = ("keras", "savedmodel", "tflite"),
    quantize: str = "none",
    on_step: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export the study's model to `output` (a folder, replaced atomically).

    Args:
        study: the study name.
        storage: the storage URL.
        output: the destination folder.
        trial: export this trial instead of the winner. Defaults to the study's best trial.
        formats: any of `keras`, `savedmodel`, `tflite`, `onnx`. Defaults to
            `("keras", "savedmodel", "tflite")`.
        quantize: TFLite quantization: `none` (float32), `float16`, `int8` (float input and
            output) or `int8-full` (int8 input and output, for microcontrollers and Edge TPU).
            Defaults to `"none"`.
        on_step: called with a short message as each format is written. Defaults to `None`.

    Raises:
        UsageError: unknown format or quantization, or an unusable output path.
        StoreError: no model to export (no retrain and no checkpoint).
        ExportError: a float format's outputs differ from the Keras model's by more than
            `FLOAT_TOLERANCE` (nothing is written).
    """
    step = on_step or (lambda _: None)
    chosen = _check_formats(formats, quantize)
    destination = Path(output)
    store = StudyStore(storage)
    artifacts = store.artifacts(study)
    target = _check_destination(destination, _kept_safe(study, store, artifacts.root))
    record = store.record(study)
    source = _choose_source(record, store, artifacts, trial)
    from automl.data import load_saved_dataset
    from automl.tfruntime import import_tensorflow

    import_tensorflow()

    dataset = load_saved_dataset(artifacts.dataset_path)
    step(f"Exporting trial {source.trial} ({source.kind} model: {shown_path(source.path)})")
    model = float32_model(strip_augmentation(load_trained(source.path)))
    sample = dataset.test.x[:PARITY_BATCH].astype("float32")
    reference = np.asarray(model.predict(sample, verbose=0))
    files: dict[str, str] = {}
    parity: dict[str, float] = {}
    notes: list[str] = []
    try:
        with atomic_folder(target) as staging:
            request = WriteRequest(model, staging, dataset, quantize)
            exact: list[str] = []
            for form in chosen:
                try:
                    written = form.write(request)
                except FormatUnavailable as unavailable:
                    notes.append(str(unavailable))
                    continue
                outputs = form.run(form.load(staging), sample)
                parity[written.parity_key] = _max_diff(outputs, reference)
                files[form.name] = written.file
                if written.exact:
                    exact.append(written.parity_key)
                step(f"  {written.file} written{written.detail}")
            _remove_intermediates(staging, files.values())
            check_parity(parity, exact)
            quantized_change = (
                None
                if quantize == "none"
                else _accuracy_change(FORMATS["tflite"], staging, model, dataset)
            )
            card = model_card(
                record,
                source,
                dataset,
                model,
                files=files,
                parity=parity,
                quantize=quantize,
                quantized_change=quantized_change,
            )
            write_card(staging, card)
            # Checked again: the export took minutes, and the user may have put something in
            # the folder meanwhile. Failing here removes only the staging folder.
            _check_replaceable(destination, target)
    except OSError as exc:
        raise UsageError(
            f"-o {shown_path(destination)}: writing the export failed ({exc.strerror or exc}); "
            "the previous export, if any, is left intact."
        ) from exc
    tables = ResultTables(store.url)
    try:
        tables.add_export(
            study=study,
            trial=source.trial,
            source=source.kind,
            directory=str(destination.resolve()),
            formats=sorted(files),
            card=card,
        )
    finally:
        tables.close()
    return ExportResult(destination, source, files, parity, card, tuple(notes))


# -- arguments and the model ----------------------------------------------------------------------


def _check_formats(formats: Sequence[str], quantize: str) -> list[Format]:
    """The chosen formats, in the order `FORMATS` lists them (the order they are written)."""
    chosen = [f.strip().lower() for f in formats if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise UsageError(
            f"--format {','.join(formats)}: unknown or empty; use a comma-separated list of "
            f"{', '.join(FORMATS)}."
        )
    if quantize not in QUANTIZATIONS:
        raise UsageError(f"--quantize {quantize}: use one of {', '.join(QUANTIZATIONS)}.")
    if quantize != "none" and "tflite" not in chosen:
        raise UsageError("--quantize applies to TFLite; add tflite to --format.")
    return [form for name, form in FORMATS.items() if name in chosen]


_LISTED = 3
_FIX = "give a new or empty folder for the export, e.g. exported/"


def _kept_safe(study: str, store: StudyStore, artifacts: Path) -> dict[Path, str]:
    """What an export must never replace, nor any folder holding it, with how messages name it
    (the first that applies is named)."""
    kept: dict[Path, str] = {}
    if store.sqlite_path is not None:
        kept[store.sqlite_path] = f"the study store ({shown_path(store.sqlite_path)})"
    kept[artifacts] = f"the artifacts of study {study!r} ({shown_path(artifacts)})"
    return kept


def _check_destination(destination: Path, kept_safe: Mapping[Path, str]) -> Path:
    """Refuse, before any work, a destination the export may not replace; return it resolved.

    Args:
        destination: the folder given as `-o`.
        kept_safe: paths that neither the destination nor anything it holds may be (besides
            the working folder), with their names for the message.

    Raises:
        UsageError: a link, a file, the working folder, a folder holding the store or the
            artifacts, a missing or unwritable parent, or a folder that is not an export.
    """
    shown = shown_path(destination)
    if destination.is_symlink():
        raise UsageError(
            f"-o {shown}: is a symbolic link; give the folder it points to "
            f"({shown_path(destination.resolve())}), or a new or empty folder."
        )
    if destination.exists() and not destination.is_dir():
        raise UsageError(f"-o {shown}: is a file; give a folder for the export.")
    target = destination.resolve()
    # Swapping out the working folder would also leave this process in a deleted folder.
    here = Path.cwd().resolve()
    if here.is_relative_to(target):
        verb = "is" if here == target else "holds"
        raise UsageError(f"-o {shown}: {verb} the working folder; {_FIX}.")
    for path, name in kept_safe.items():
        if path.resolve().is_relative_to(target):
            raise UsageError(f"-o {shown}: holds {name}; {_FIX}.")
    check_output_folder(destination, target.parent)
    _check_replaceable(destination, target)
    return target


def _check_replaceable(destination: Path, target: Path) -> None:
    """Refuse a destination that holds anything but an earlier export.

    Raises:
        UsageError: naming the first entries that are not an export's.
    """
    if not target.is_dir():
        return
    entries = sorted(entry.name for entry in target.iterdir())
    if not entries:
        return
    card = read_card(target)
    if card is None:
        what, fix = "not an automl export", "give an empty or new folder, or remove them"
        foreign = entries
    else:
        what, fix = "not part of its automl export", "move them out, or give an empty or new folder"
        foreign = [entry for entry in entries if entry not in export_entries(card)]
        if not foreign:
            return
    listed = ", ".join(foreign[:_LISTED]) + (
        f", … {len(foreign) - _LISTED} more" if len(foreign) > _LISTED else ""
    )
    raise UsageError(
        f"-o {shown_path(destination)}: the folder holds files that are {what} ({listed}); {fix}."
    )


def _choose_source(
    record: StudyRecord, store: StudyStore, artifacts: Any, trial: int | None
) -> ModelSource:
    tables = ResultTables(store.url)
    try:
        retrains = [r for r in tables.retrains(record.name) if r.source == "retrain"]
    finally:
        tables.close()
    if trial is None:
        best = record.best()
        if best is None:
            raise StoreError(f"study {record.name!r} has no complete trial to export yet.")
        # Of several retrained trials (retrain --top-k), the best mean test accuracy.
        pick = chosen_retrained(retrains, best.number)
        trial = pick.trial if pick is not None else best.number
    known = {t.number: t for t in record.trials}
    if trial not in known:
        raise StoreError(f"study {record.name!r} has no trial {trial}.")
    retrained = [r for r in retrains if r.trial == trial and Path(r.model_path).is_file()]
    if retrained:
        chosen = max(retrained, key=lambda r: (r.seed == 0, r.id))
        return ModelSource(trial, "retrained", Path(chosen.model_path), chosen.metrics)
    checkpoint = artifacts.checkpoint_path(trial)
    if checkpoint.is_file():
        return ModelSource(trial, "checkpoint", checkpoint)
    state = known[trial].state
    why = (
        "it did not complete"
        if state is not TrialState.COMPLETE
        else ("its checkpoint was not kept (only the best --keep-checkpoints are)")
    )
    raise StoreError(
        f"no model to export for trial {trial} of {record.name!r}: {why}; run "
        f"automl retrain {record.name} --top-k N to retrain it first."
    )


# -- checks ---------------------------------------------------------------------------------------


def _max_diff(a: Any, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype="float64") - b.astype("float64"))))


def check_parity(parity: Mapping[str, float], exact: Iterable[str]) -> None:
    """Fail unless every format in `exact` matches the Keras model within `FLOAT_TOLERANCE`.

    Args:
        parity: each format's largest absolute difference from the Keras model, by parity key.
        exact: the parity keys held to the tolerance (quantized formats are only measured).

    Raises:
        ExportError: the first format over the tolerance (or NaN).
    """
    for name in exact:
        difference = parity[name]
        if not difference <= FLOAT_TOLERANCE:  # also catches NaN
            raise ExportError(
                f"{name} output differs from the Keras model by {difference:.2e} "
                f"(more than {FLOAT_TOLERANCE:g}); the export was not written."
            )


def _remove_intermediates(folder: Path, files: Iterable[str]) -> None:
    """Remove what the formats left that is not one of their files (the SavedModel that
    TFLite and ONNX were converted from, when `savedmodel` was not asked for)."""
    kept = {file.rstrip("/") for file in files}
    for entry in folder.iterdir():
        if entry.name not in kept:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _accuracy_change(
    tflite: Format, folder: Path, model: Any, dataset: Dataset
) -> dict[str, float]:
    """Test accuracy of the quantized TFLite model against the Keras model's."""
    # A batch at a time: the test split of a folder is large and memory-mapped.
    loaded = tflite.load(folder)
    keras_right = lite_right = 0
    for start in range(0, len(dataset.test), ACCURACY_BATCH):
        x = np.asarray(dataset.test.x[start : start + ACCURACY_BATCH], dtype="float32")
        y = dataset.test.y[start : start + ACCURACY_BATCH]
        keras_right += int(np.sum(np.argmax(model.predict(x, verbose=0), 1) == y))
        lite_right += int(np.sum(np.argmax(tflite.run(loaded, x), 1) == y))
    keras_accuracy = keras_right / len(dataset.test)
    lite_accuracy = lite_right / len(dataset.test)
    return {
        "keras_test_accuracy": keras_accuracy,
        "tflite_test_accuracy": lite_accuracy,
        "change": lite_accuracy - keras_accuracy,
    }
