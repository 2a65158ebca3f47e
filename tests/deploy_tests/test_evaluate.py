"""The test-split metrics of retraining and the model card (scikit-learn's own functions)."""

from __future__ import annotations

import numpy as np
import pytest

from automl.deploy.evaluate import classification_metrics


def test_accuracy_top5_f1_and_confusion_on_a_known_case() -> None:
    names = [f"c{i}" for i in range(7)]
    # Each row ranks the classes by its probabilities; the true class is at the given rank.
    ranks = [0, 0, 1, 4, 5, 6]  # right, right, 2nd, 5th (in the top 5), 6th, 7th (not)
    y_true = np.array([0, 1, 2, 3, 4, 5])
    probabilities = np.zeros((6, 7), dtype=np.float32)
    for row, (label, rank) in enumerate(zip(y_true, ranks, strict=True)):
        order = [c for c in range(7) if c != label]
        order.insert(rank, int(label))
        probabilities[row, order] = np.linspace(0.4, 0.01, 7)
    metrics = classification_metrics(y_true, probabilities, names)
    assert metrics["accuracy"] == pytest.approx(2 / 6)
    assert metrics["top5_accuracy"] == pytest.approx(4 / 6)
    assert metrics["examples"] == 6 and len(metrics["per_class"]) == 7
    assert np.trace(metrics["confusion_matrix"]) == 2 and np.sum(metrics["confusion_matrix"]) == 6
    small = classification_metrics(np.array([0, 1]), np.eye(2, dtype=np.float32), ["a", "b"])
    assert small["accuracy"] == 1.0 and "top5_accuracy" not in small  # 5 classes or fewer
