"""In a notebook: Keras Tuner's API (`Tuner`) and AutoKeras's (`ImageClassifier`) over the
engine of `automl search`."""

from __future__ import annotations

from automl.notebook.classifier import ImageClassifier
from automl.notebook.tuner import Tuner

__all__ = ["ImageClassifier", "Tuner"]
