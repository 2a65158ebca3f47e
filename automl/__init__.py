"""automl: hyperparameter search and AutoML for Keras image classifiers.

Importing the package is cheap on purpose: TensorFlow and Keras are imported only where a model
is built or run, never here.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
