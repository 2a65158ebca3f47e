"""Predicting with an export: preprocess image files the way training did, run the model.

Reads `model_card.json` for the input shape, channels and class names; runs `model.keras`
(or `model.tflite`) through the same format objects export checked it with
(`automl.deploy.formats`). A file that cannot be read (missing, truncated, not an image, or a
decompression bomb: a few bytes declaring more pixels than Pillow's limit) is reported on its
own; the rest are predicted, `BATCH_SIZE` images at a time, so memory does not grow with the
number of files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl.deploy.card import CARD_FILE, read_card
from automl.deploy.formats import FORMATS
from automl.errors import UsageError, shown_path

BACKENDS = ("keras", "tflite")
"""The formats predict runs when no backend is named, in order of preference."""

BATCH_SIZE = 64
"""Images decoded and run together; only one batch of pixels is in memory at a time."""


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
        card = read_card(self.directory)
        if card is None:
            raise UsageError(
                f"{shown_path(self.directory)}: not an automl export (no readable "
                f"{CARD_FILE}); give the folder written by automl export."
            )
        self.card = card
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
        """float32 pixels in [0, 255], resized (bilinear) and with the training channels.

        Raises:
            PIL.Image.DecompressionBombWarning: the file declares more pixels than Pillow's
                limit (raised, not warned: it would be decoded whole otherwise).
            PIL.Image.DecompressionBombError: the file declares over twice that.
            OSError: missing, unreadable, truncated or not an image.
        """
        from automl.data.images import decode_image

        pixels = decode_image(Path(path), (self.height, self.width), self.channels == 3)
        return pixels.astype(np.float32)

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of preprocessed images."""
        return self._format.run(self._model, images)

    def predict_files(
        self, paths: Sequence[str], top_k: int = 1, batch_size: int = BATCH_SIZE
    ) -> list[Prediction]:
        """Top-k classes of each image; unreadable files get an error, the rest are predicted.

        Args:
            paths: the image files, in the order results are returned.
            top_k: how many classes to give per image. Defaults to 1.
            batch_size: images decoded and run together. Defaults to `BATCH_SIZE`.
        """
        return list(self.iter_predictions(paths, top_k, batch_size))

    def iter_predictions(
        self, paths: Sequence[str], top_k: int = 1, batch_size: int = BATCH_SIZE
    ) -> Iterator[Prediction]:
        """`predict_files`, one result at a time as each batch is done."""
        size = max(1, batch_size)
        for start in range(0, len(paths), size):
            batch = paths[start : start + size]
            loaded = self.load_files(batch)
            ready = [x for x in loaded if isinstance(x, np.ndarray)]
            rows = iter(self.predict_arrays(np.stack(ready)) if ready else [])
            for path, item in zip(batch, loaded, strict=True):
                yield item if isinstance(item, Prediction) else self.ranked(path, next(rows), top_k)

    def load_files(self, paths: Sequence[str]) -> list[np.ndarray | Prediction]:
        """Each file preprocessed, or the `Prediction` that says why it cannot be read."""
        from PIL import Image

        # What Pillow raises for a file that is not a readable image; anything else is a bug.
        unreadable = (
            OSError,
            ValueError,
            SyntaxError,
            EOFError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        )
        loaded: list[np.ndarray | Prediction] = []
        for path in paths:
            try:
                loaded.append(self.preprocess(path))
            except unreadable as exc:
                loaded.append(Prediction(path, error=_why_unreadable(exc)))
        return loaded

    def ranked(self, path: str, row: np.ndarray, top_k: int) -> Prediction:
        """The top-k classes of one row of probabilities."""
        k = max(1, min(top_k, len(self.class_names)))
        best = np.argsort(row)[::-1][:k]
        return Prediction(path, [(self.class_names[i], float(row[i])) for i in best])


def _why_unreadable(exc: Exception) -> str:
    """Why a file could not be read, for its line of output."""
    from PIL import Image

    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        from automl.data.images import too_many_pixels

        return f"not a readable image ({too_many_pixels(exc)})"
    return f"not a readable image ({type(exc).__name__})"
