"""Predicting with an export: preprocess image files the way training did, run the model.

Reads `model_card.json` for the input shape, channels and class names; runs `model.keras`
(or `model.tflite`) through the same format objects export checked it with
(`automl.deploy.formats`). A file that cannot be read is reported on its own; the rest are
predicted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl.deploy.card import CARD_FILE
from automl.deploy.formats import FORMATS
from automl.errors import UsageError, shown_path

BACKENDS = ("keras", "tflite")
"""The formats predict runs when no backend is named, in order of preference."""


@dataclass(frozen=True)
class Prediction:
    """The result for one image file: the top classes, or why it failed."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None


class Predictor:
    """A loaded export.

    Args:
        directory: an `automl export` folder.
        backend: the format to run (`keras`, `tflite`, or another format the export has).
            Defaults to `None`: the first of `BACKENDS` in the export.
    """

    def __init__(self, directory: str | os.PathLike[str], backend: str | None = None) -> None:
        self.directory = Path(directory)
        card_path = self.directory / CARD_FILE
        if not card_path.is_file():
            raise UsageError(
                f"{shown_path(self.directory)}: not an automl export (no model_card.json); give "
                "the folder written by automl export."
            )
        self.card = json.loads(card_path.read_text(encoding="utf-8"))
        self.class_names = list(self.card["class_names"])
        self.height, self.width, self.channels = self.card["input"]["shape"]
        files = self.card.get("files", {})
        choices = [backend] if backend else [b for b in BACKENDS if b in files]
        if not choices or choices[0] not in files or choices[0] not in FORMATS:
            raise UsageError(
                f"{shown_path(self.directory)}: no {backend or ' or '.join(BACKENDS)} model in "
                f"this export (it has {', '.join(files) or 'none'})."
            )
        self.backend = choices[0]
        self._format = FORMATS[self.backend]
        from automl.tfruntime import import_tensorflow

        import_tensorflow()
        self._model: Any = self._format.load(self.directory)

    def preprocess(self, path: str | os.PathLike[str]) -> np.ndarray:
        """float32 pixels in [0, 255], resized (bilinear) and with the training channels."""
        from PIL import Image

        with Image.open(path) as image:
            image.seek(0)
            converted = image.convert("RGB" if self.channels == 3 else "L")
            if converted.size != (self.width, self.height):
                converted = converted.resize((self.width, self.height), Image.Resampling.BILINEAR)
            array = np.asarray(converted, dtype=np.float32)
        return array if self.channels == 3 else array[..., np.newaxis]

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of preprocessed images."""
        return self._format.run(self._model, images)

    def predict_files(self, paths: Sequence[str], top_k: int = 1) -> list[Prediction]:
        """Top-k classes of each image; unreadable files get an error, the rest are predicted."""
        ready: list[tuple[str, np.ndarray]] = []
        results: dict[str, Prediction] = {}
        for path in paths:
            try:
                ready.append((path, self.preprocess(path)))
            except FileNotFoundError:
                results[path] = Prediction(path, error="no such file")
            except (OSError, ValueError, SyntaxError) as exc:
                results[path] = Prediction(
                    path, error=f"not a readable image ({type(exc).__name__})"
                )
        if ready:
            probabilities = self.predict_arrays(np.stack([image for _, image in ready]))
            k = max(1, min(top_k, len(self.class_names)))
            for (path, _), row in zip(ready, probabilities, strict=True):
                best = np.argsort(row)[::-1][:k]
                results[path] = Prediction(
                    path, [(self.class_names[i], float(row[i])) for i in best]
                )
        return [results[path] for path in paths]
