"""`automl.ImageClassifier`: AutoML without a space file, as AutoKeras users expect.

`ImageClassifier(max_trials=…).fit(x, y)` searches the flagship space shipped inside the package
(the same file as the readable example `spaces/cnn.py`), retrains the winner on train + val as
`automl search` does, and keeps it: `predict`, `evaluate` and `export_model` use it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from automl.errors import UsageError
from automl.notebook.tuner import Tuner
from automl.spaces.builtin import FLAGSHIP


class ImageClassifier(Tuner):
    """Search the flagship space (plain CNN, ResNet, and the `keras.applications` backbones on
    images of 32 px and more) for the best classifier of `x`.

    Args:
        max_trials: the study's total of finished trials. Defaults to `10`.
        project_name: the study's name. Defaults to `"image_classifier"`.
        directory: the folder of the store and of the study's files. Defaults to `runs`.
        overwrite: start the study over. Defaults to `False` (it resumes).
        objective: the metric. Defaults to `"val_accuracy"`.
        **settings: the other `Tuner` settings (`workers`, `gpus`, `sampler`, `pruner`, `seed`,
            `max_epochs`, …).
    """

    def __init__(
        self,
        max_trials: int = 10,
        project_name: str = "image_classifier",
        directory: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        objective: Any = "val_accuracy",
        **settings: Any,
    ) -> None:
        super().__init__(
            None,
            objective=objective,
            max_trials=max_trials,
            study=project_name,
            directory=directory,
            overwrite=overwrite,
            **settings,
        )
        self.model: Any = None
        self._labels: np.ndarray | None = None

    def _space(self, folder: Path, **shipping: Any) -> Path:
        return FLAGSHIP

    _scale_images = True  # pixels as the flagship's models take them ([0, 1] floats are scaled)

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        epochs: int | None = None,
        validation_split: float | None = 0.2,
        validation_data: Any = None,
        **kwargs: Any,
    ) -> None:
        """Search, then retrain the winner on train + val and keep it as `model`.

        `x`: images (n, height, width[, channels]) as arrays, or a data source (`"digits"`, an
        image folder, an `.npz`); `y`: their labels (any values: `predict` gives them back).
        """
        self.search(
            x,
            y,
            validation_data=validation_data,
            epochs=epochs,
            validation_split=validation_split,
            **kwargs,
        )
        if self.last_search is None:
            return  # interrupted: fit again resumes
        if y is not None:
            from automl.notebook.tuner import _from_one_hot

            self._labels = np.unique(np.asarray(_from_one_hot(y, "y")[0]).reshape(-1))
        results = self.retrain(top_k=1)
        import keras

        self.model = keras.saving.load_model(results[0].model_path, safe_mode=True)

    def _fitted(self) -> Any:
        if self.model is None:
            raise UsageError("the classifier is not fitted yet; call fit(x, y) first.")
        return self.model

    def _images(self, x: Any) -> np.ndarray:
        from automl.data.sources import as_images

        return as_images(np.asarray(x), "x", scale=True).astype(np.float32)

    def predict(self, x: Any, **kwargs: Any) -> np.ndarray:
        """The predicted label of each image, shape (n, 1), as AutoKeras gives them."""
        kwargs.setdefault("verbose", 0)
        probabilities = self._fitted().predict(self._images(x), **kwargs)
        index = np.argmax(probabilities, axis=1)
        if self._labels is None:  # searched on a data source: its class indices
            return index.reshape(-1, 1)
        return self._labels[index].reshape(-1, 1)

    def evaluate(self, x: Any, y: Any, **kwargs: Any) -> Any:
        """The model's loss and metrics on `x`, `y` (Keras `evaluate`)."""
        kwargs.setdefault("verbose", 0)
        labels = np.asarray(y).reshape(-1)
        if self._labels is not None:
            labels = np.searchsorted(self._labels, labels)
        return self._fitted().evaluate(self._images(x), labels, **kwargs)

    def export_model(self) -> Any:
        """The retrained best model (a `keras.Model`)."""
        return self._fitted()
