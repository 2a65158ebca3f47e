"""The model card (`model_card.json`) and the README of an export.

The card is what predict and any other reader need to use the export (class names, input shape
and scaling, files) and what reproduces it (study, trial, parameters, data and space hashes,
versions), plus how closely each format matched the Keras model. The README is rendered from the
card; each format contributes its own usage section.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl.deploy.formats import FORMATS

if TYPE_CHECKING:
    from automl.data.dataset import Dataset
    from automl.deploy.export import ModelSource
    from automl.storage.records import StudyRecord

CARD_FILE = "model_card.json"
README_FILE = "README.md"
VERSIONED = ("automl-keras", "tensorflow", "keras", "numpy")
CARD_KEYS = frozenset(
    {"study", "trial", "model", "class_names", "input", "files", "parity_max_abs_difference"}
)
"""Keys every card `model_card` has ever written: a card with all of them is taken as ours."""


def model_card(
    record: StudyRecord,
    source: ModelSource,
    dataset: Dataset,
    model: Any,
    *,
    files: Mapping[str, str],
    parity: Mapping[str, float],
    quantize: str,
    quantized_change: Mapping[str, float] | None,
) -> dict[str, Any]:
    """The card of an export, as JSON-ready data.

    Args:
        record: the study.
        source: the model exported (trial, retrained or checkpoint, test metrics).
        dataset: the study's data (class names, input shape, source and hash).
        model: the exported Keras model.
        files: each format written, by name, with its file in the export folder.
        parity: each format's largest absolute difference from the Keras model.
        quantize: the TFLite quantization.
        quantized_change: the test-accuracy change of a quantized TFLite model, if any.
    """
    trial = next(t for t in record.trials if t.number == source.trial)
    height, width, channels = dataset.input_shape
    versions = {}
    for dist in VERSIONED:
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
        "files": dict(files),
        "parity_max_abs_difference": dict(parity),
        "tflite_quantization": quantize,
        "tflite_quantized_accuracy_change": (
            None if quantized_change is None else dict(quantized_change)
        ),
        "data": {"source": dataset.source, "sha256": dataset.sha256},
        "space_sha256": record.space.sha256,
        "versions": versions,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def readme(card: Mapping[str, Any]) -> str:
    """The export's README: input and output in words, then how to run each format written."""
    height, width, channels = card["input"]["shape"]
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
    for name, form in FORMATS.items():
        if name in card["files"]:
            lines += form.usage(card)
    return "\n".join(lines)


def write_card(folder: Path, card: Mapping[str, Any]) -> None:
    """Write `model_card.json` and `README.md` into the export folder."""
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2), encoding="utf-8")
    (folder / README_FILE).write_text(readme(card), encoding="utf-8")


def read_card(folder: Path) -> dict[str, Any] | None:
    """The model card of an earlier export in `folder`, or None if there is none that is ours.

    Ours means: `model_card.json` is a file (not a link) holding a JSON object with every key
    of `CARD_KEYS`, and its `files` maps format names to file names.
    """
    path = folder / CARD_FILE
    if path.is_symlink() or not path.is_file():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(card, dict) or not card.keys() >= CARD_KEYS:
        return None
    files = card["files"]
    if not isinstance(files, dict) or not all(isinstance(f, str) for f in files.values()):
        return None
    return card


def export_entries(card: Mapping[str, Any]) -> frozenset[str]:
    """The names an export folder with this card holds: the card, the README and each format's
    file or folder."""
    return frozenset({CARD_FILE, README_FILE, *(f.rstrip("/") for f in card["files"].values())})
