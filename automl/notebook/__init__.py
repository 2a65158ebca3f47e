"""In a notebook: Keras Tuner's API (`Tuner`) over the engine of `automl search`."""

from __future__ import annotations

from automl.notebook.tuner import Tuner

__all__ = ["Tuner"]
