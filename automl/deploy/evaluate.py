"""Scoring a classifier on the held-out test split: the metrics reports and model cards show."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, top-5 accuracy (above 5 classes), macro and per-class precision / recall / F1,
    and the confusion matrix (rows: true class, columns: predicted), as JSON-ready values."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    labels = list(range(len(class_names)))
    y_true = np.asarray(y_true).astype(int)
    predicted = np.argmax(probabilities, axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, predicted, labels=labels, zero_division=0
    )
    metrics: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "macro_f1": float(np.mean(f1)),
        "examples": len(y_true),
        "confusion_matrix": confusion_matrix(y_true, predicted, labels=labels).tolist(),
        "per_class": [
            {
                "class": name,
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
            }
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)
        ],
    }
    if len(class_names) > 5:
        metrics["top5_accuracy"] = float(
            top_k_accuracy_score(y_true, probabilities, k=5, labels=labels)
        )
    return metrics
