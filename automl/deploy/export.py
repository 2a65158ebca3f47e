"""Exporting a study's model: `.keras`, SavedModel, TFLite (float32, float16, int8) and ONNX,
each checked for output parity against the Keras model, with a model card and a README.

The model is the retrained winner when there is one, else the best trial's best-epoch
checkpoint. Augmentation layers are removed first (they only act in training), so every
inference graph is free of them. The export is written to a temporary folder beside the
destination and swapped into place only when complete: an interrupted export leaves the
previous one intact.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from automl.errors import StoreError, UsageError, shown_path
from automl.storage.records import StudyRecord, TrialState
from automl.storage.store import StudyStore
from automl.storage.tables import ResultTables

FORMATS = ("keras", "savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("none", "float16", "int8")
FLOAT_TOLERANCE = 1e-4
PARITY_BATCH = 64


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
        trial: export this trial instead of the winner.
        formats: any of `keras`, `savedmodel`, `tflite`, `onnx`.
        quantize: TFLite quantization: `none` (float32), `float16` or `int8`.
        on_step: called with a short message as each format is written.

    Raises:
        UsageError: unknown format or quantization, or an unusable output path.
        StoreError: no model to export (no retrain and no checkpoint).
    """
    step = on_step or (lambda _: None)
    formats = _check_formats(formats, quantize)
    destination = Path(output)
    _check_destination(destination)
    store = StudyStore(storage)
    record = store.record(study)
    artifacts = store.artifacts(study)
    source = _choose_source(record, store, artifacts, trial)
    from automl.data import load_saved_dataset
    from automl.tfruntime import import_tensorflow

    import_tensorflow()
    import keras

    dataset = load_saved_dataset(artifacts.dataset_path)
    step(f"Exporting trial {source.trial} ({source.kind} model: {shown_path(source.path)})")
    model = strip_augmentation(keras.saving.load_model(source.path, safe_mode=True))
    sample = _parity_batch(dataset)
    reference = np.asarray(model.predict(sample, verbose=0))
    _remove_stale_staging(destination)
    staging = destination.with_name(f".{destination.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    files: dict[str, str] = {}
    parity: dict[str, float] = {}
    notes: list[str] = []
    try:
        saved_model = staging / "saved_model"
        if "keras" in formats:
            model.save(staging / "model.keras")
            reloaded = keras.saving.load_model(staging / "model.keras", safe_mode=True)
            parity["keras"] = _max_diff(reloaded.predict(sample, verbose=0), reference)
            files["keras"] = "model.keras"
            step("  model.keras written")
        if "savedmodel" in formats or "tflite" in formats or "onnx" in formats:
            model.export(str(saved_model), format="tf_saved_model", verbose=False)
        if "savedmodel" in formats:
            parity["savedmodel"] = _max_diff(_run_saved_model(saved_model, sample), reference)
            files["savedmodel"] = "saved_model/"
            step("  saved_model/ written (signature 'serve')")
        quantized_change = None
        if "tflite" in formats:
            content = _tflite(saved_model, dataset, quantize)
            (staging / "model.tflite").write_bytes(content)
            outputs = run_tflite(content, sample)
            parity[f"tflite_{_tflite_kind(quantize)}"] = _max_diff(outputs, reference)
            files["tflite"] = "model.tflite"
            if quantize != "none":
                quantized_change = _accuracy_change(content, model, dataset)
            step(f"  model.tflite written ({_tflite_kind(quantize)})")
        if "onnx" in formats:
            try:
                _onnx(saved_model, staging / "model.onnx", dataset.input_shape)
            except ImportError:
                notes.append(
                    "model.onnx skipped: install the onnx extra "
                    "(pip install 'automl-keras[onnx]') to export ONNX"
                )
            else:
                parity["onnx"] = _max_diff(run_onnx(staging / "model.onnx", sample), reference)
                files["onnx"] = "model.onnx"
                step("  model.onnx written")
        if "savedmodel" not in formats and saved_model.exists():
            shutil.rmtree(saved_model)
        for name, difference in parity.items():
            if name.startswith(("keras", "savedmodel", "tflite_float32", "onnx")) and not (
                difference <= FLOAT_TOLERANCE
            ):
                raise RuntimeError(
                    f"{name} output differs from the Keras model by {difference:.2e} "
                    f"(more than {FLOAT_TOLERANCE:g}); the export was not written."
                )
        card = _model_card(
            record, source, dataset, files, parity, quantize, quantized_change, model
        )
        (staging / "model_card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
        (staging / "README.md").write_text(_readme(card), encoding="utf-8")
        _sync(staging)
        _swap_into_place(staging, destination)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UsageError(
            f"-o {shown_path(destination)}: writing the export failed ({exc.strerror or exc}); "
            "the previous export, if any, is left intact."
        ) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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


# -- choosing and preparing the model -------------------------------------------------------------


def _check_formats(formats: Sequence[str], quantize: str) -> list[str]:
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
    return chosen


def _check_destination(destination: Path) -> None:
    if destination.exists() and not destination.is_dir():
        raise UsageError(f"-o {shown_path(destination)}: is a file; give a folder for the export.")
    parent = destination.resolve().parent
    if not parent.is_dir():
        raise UsageError(
            f"-o {shown_path(destination)}: the folder {shown_path(parent)} does not "
            "exist; create it first."
        )
    if not os.access(parent, os.W_OK):
        raise UsageError(f"-o {shown_path(destination)}: cannot write in {shown_path(parent)}.")


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
        trial = best.number
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


def strip_augmentation(model: Any) -> Any:
    """The same model without its random augmentation layers (identity at inference).

    Functional models are rebuilt from their config with each augmentation layer's input wired
    to its consumers; weights are copied by layer name.
    """
    import keras

    from automl.spaces.zoo import AUGMENTATION_PREFIX

    random_layers = tuple(
        getattr(keras.layers, name)
        for name in (
            "RandomFlip",
            "RandomRotation",
            "RandomZoom",
            "RandomTranslation",
            "RandomContrast",
            "RandomBrightness",
            "RandomCrop",
        )
        if hasattr(keras.layers, name)
    )

    def is_augmentation(layer: Any) -> bool:
        return layer.name.startswith(AUGMENTATION_PREFIX) or isinstance(layer, random_layers)

    removed = [layer.name for layer in model.layers if is_augmentation(layer)]
    if not removed:
        return model
    if isinstance(model, keras.Sequential):
        kept = [layer for layer in model.layers if not is_augmentation(layer)]
        clean = keras.Sequential([keras.Input(model.input_shape[1:]), *kept], name=model.name)
        return clean
    config = model.get_config()
    replacement: dict[str, list[Any]] = {}
    for layer in config["layers"]:
        if layer["name"] in removed:
            inbound = layer["inbound_nodes"][0]["args"][0]
            replacement[layer["name"]] = inbound["config"]["keras_history"]

    def resolve(history: list[Any]) -> list[Any]:
        while history[0] in replacement:
            history = replacement[history[0]]
        return history

    def rewire(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                value["config"]["keras_history"] = resolve(value["config"]["keras_history"])
                return value
            return {k: rewire(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(rewire(v) for v in value)
        return value

    config["layers"] = [rewire(layer) for layer in config["layers"] if layer["name"] not in removed]
    outputs = config["output_layers"]
    if outputs and isinstance(outputs[0], str):  # a single output: [name, node, tensor]
        config["output_layers"] = resolve(outputs)
    else:
        config["output_layers"] = [resolve(h) for h in outputs]
    clean = model.__class__.from_config(config)
    for layer in clean.layers:
        source = model.get_layer(layer.name)
        layer.set_weights(source.get_weights())
    return clean


# -- formats --------------------------------------------------------------------------------------


def _parity_batch(dataset: Any) -> np.ndarray:
    return dataset.test.x[:PARITY_BATCH].astype("float32")


def _max_diff(a: Any, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype="float64") - b.astype("float64"))))


def _run_saved_model(path: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return np.asarray(loaded.serve(tf.constant(x)))


def _tflite_kind(quantize: str) -> str:
    return {"none": "float32", "float16": "float16", "int8": "int8"}[quantize]


def _tflite(saved_model: Path, dataset: Any, quantize: str) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        calibration = dataset.train.x[:200].astype("float32")

        def representative() -> Any:
            for index in range(len(calibration)):
                yield [calibration[index : index + 1]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    from automl.tfruntime import quiet_stderr

    with quiet_stderr(enabled=True):  # the converter reports its settings on stderr
        return bytes(converter.convert())


def tflite_interpreter(content: bytes) -> Any:
    """An allocated TFLite interpreter: LiteRT's when installed, else TensorFlow's (whose
    deprecation warning and delegate chatter are kept off the terminal)."""
    import warnings

    from automl.tfruntime import quiet_stderr

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings(), quiet_stderr(enabled=True):
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_content=content)
        interpreter.allocate_tensors()
    return interpreter


def run_tflite(content: bytes, x: np.ndarray) -> np.ndarray:
    """Run a TFLite model one image at a time (its batch dimension is fixed to 1)."""
    return run_tflite_interpreter(tflite_interpreter(content), x)


def run_tflite_interpreter(interpreter: Any, x: np.ndarray) -> np.ndarray:
    """Run an allocated TFLite interpreter over a batch, one image at a time."""
    entry = interpreter.get_input_details()[0]
    exit_ = interpreter.get_output_details()[0]
    outputs = []
    for image in x:
        interpreter.set_tensor(entry["index"], image[np.newaxis].astype(entry["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(exit_["index"])[0])
    return np.asarray(outputs, dtype="float32")


def _accuracy_change(content: bytes, model: Any, dataset: Any) -> dict[str, float]:
    x = dataset.test.x.astype("float32")
    keras_accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), 1) == dataset.test.y))
    lite_accuracy = float(np.mean(np.argmax(run_tflite(content, x), 1) == dataset.test.y))
    return {
        "keras_test_accuracy": keras_accuracy,
        "tflite_test_accuracy": lite_accuracy,
        "change": lite_accuracy - keras_accuracy,
    }


def _onnx(saved_model: Path, path: Path, input_shape: tuple[int, ...]) -> None:
    import tensorflow as tf
    import tf2onnx

    loaded = tf.saved_model.load(str(saved_model))
    spec = [tf.TensorSpec((None, *input_shape), tf.float32, name="images")]
    tf2onnx.convert.from_function(
        tf.function(lambda x: loaded.serve(x)),
        input_signature=spec,
        opset=17,
        output_path=str(path),
    )


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


# -- card, readme, atomic swap --------------------------------------------------------------------


def _model_card(
    record: StudyRecord,
    source: ModelSource,
    dataset: Any,
    files: dict[str, str],
    parity: dict[str, float],
    quantize: str,
    quantized: dict[str, float] | None,
    model: Any,
) -> dict[str, Any]:
    trial = next(t for t in record.trials if t.number == source.trial)
    height, width, channels = dataset.input_shape
    versions = {}
    for dist in ("automl-keras", "tensorflow", "keras", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {
        "study": record.name,
        "trial": source.trial,
        "model": source.kind,
        "class_names": list(dataset.class_names),
        "input": {
            "shape": [height, width, channels],
            "dtype": "float32",
            "batch_dimension": "first; TFLite runs one image at a time",
        },
        "preprocessing": {
            "resize": f"bilinear to {height}×{width}",
            "channels": "grayscale" if channels == 1 else "RGB",
            "scaling": "none: feed raw pixel values in [0, 255]; the model scales them",
        },
        "output": "softmax probabilities, one per class, in class_names order",
        "parameters": dict(trial.params),
        "parameter_count": int(model.count_params()),
        "objective": {
            "metric": record.metric,
            "direction": record.direction,
            "validation_value": trial.value,
            "best_epoch": trial.best_epoch,
        },
        "test_metrics": {
            k: v for k, v in source.metrics.items() if k not in ("per_class", "confusion_matrix")
        },
        "files": files,
        "parity_max_abs_difference": parity,
        "tflite_quantization": quantize,
        "tflite_quantized_accuracy_change": quantized,
        "data": {"source": dataset.source, "sha256": dataset.sha256},
        "space_sha256": record.space.get("sha256"),
        "versions": versions,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _readme(card: dict[str, Any]) -> str:
    height, width, channels = card["input"]["shape"]
    files = card["files"]
    lines = [
        f"# {card['study']} — trial {card['trial']} ({card['model']} model)",
        "",
        f"Input: float32 images of shape ({height}, {width}, {channels}), raw pixel values in "
        "[0, 255] (the model scales them). Output: one softmax probability per class, in the "
        "order of `class_names` in `model_card.json`.",
        "",
        "Predict with automl: `automl predict <this folder> image.png`.",
        "",
    ]
    if "keras" in files:
        lines += [
            "## model.keras",
            "```python",
            "import keras",
            'model = keras.saving.load_model("model.keras", safe_mode=True)',
            "probabilities = model.predict(images)",
            "```",
            "",
        ]
    if "savedmodel" in files:
        lines += [
            "## saved_model/ (TensorFlow Serving)",
            "```python",
            "import tensorflow as tf",
            'model = tf.saved_model.load("saved_model")',
            "probabilities = model.serve(tf.constant(images))",
            "```",
            "TensorFlow Serving: `--model_base_path` pointing at a numbered copy of "
            "`saved_model/` (signature `serving_default`).",
            "",
        ]
    if "tflite" in files:
        lines += [
            f"## model.tflite ({card['tflite_quantization']} quantization)",
            "```python",
            "from ai_edge_litert.interpreter import Interpreter  # or tf.lite.Interpreter",
            'interpreter = Interpreter(model_path="model.tflite")',
            "interpreter.allocate_tensors()",
            "entry = interpreter.get_input_details()[0]",
            'interpreter.set_tensor(entry["index"], images[:1])',
            "interpreter.invoke()",
            'probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])',
            "```",
            "",
        ]
    if "onnx" in files:
        lines += [
            "## model.onnx",
            "```python",
            "import onnxruntime",
            'session = onnxruntime.InferenceSession("model.onnx")',
            'probabilities = session.run(None, {"images": images})[0]',
            "```",
            "",
        ]
    return "\n".join(lines)


def _sync(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


_RENAME_EXCHANGE = 2


def _remove_stale_staging(destination: Path) -> None:
    """Remove what an interrupted export left beside the destination (its process is gone)."""
    for leftover in destination.parent.glob(f".{destination.name}.*-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(leftover, ignore_errors=True)
        except PermissionError:
            continue


def _swap_into_place(staging: Path, destination: Path) -> None:
    """Put `staging` at `destination`; an existing export is exchanged atomically (Linux
    renameat2) and then removed, so a reader sees the old export or the new, never neither."""
    if not destination.exists():
        os.replace(staging, destination)
        return
    if _exchange(staging, destination):
        shutil.rmtree(staging, ignore_errors=True)  # now holds the previous export
        return
    previous = destination.with_name(f".{destination.name}.old-{os.getpid()}")
    os.replace(destination, previous)
    os.replace(staging, destination)
    shutil.rmtree(previous, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(result == 0)
