"""Retraining the winner, exporting models, and predicting with an export.

This is the library API the CLI calls, so a service can call the same functions.
"""

from __future__ import annotations

from automl.deploy.export import ExportResult, export_study
from automl.deploy.predict import Prediction, Predictor
from automl.deploy.retrain import RetrainResult, retrain_epochs, retrain_study

__all__ = [
    "ExportResult",
    "Prediction",
    "Predictor",
    "RetrainResult",
    "export_study",
    "retrain_epochs",
    "retrain_study",
]
