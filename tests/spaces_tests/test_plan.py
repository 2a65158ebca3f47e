"""The training plan as a value: its phases and the callbacks that apply (no Keras needed)."""

from __future__ import annotations

import pytest

from automl.spaces import FineTune, TrainingPlan


class _Watching:
    """Stands in for a Keras callback that watches a metric."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor


MODEL = object()


def test_a_bare_model_is_a_plan_of_one_phase() -> None:
    plan = TrainingPlan.of(MODEL)
    assert plan == TrainingPlan(MODEL, (), None)
    assert TrainingPlan.of(plan) is plan
    assert plan.phases(5) == ((0, 5),)


@pytest.mark.parametrize(
    ("epochs", "at_fraction", "phases"),
    [
        (10, 0.5, ((0, 5), (5, 10))),
        (4, 0.25, ((0, 1), (1, 4))),
        (2, 0.9, ((0, 1), (1, 2))),  # at least one epoch of each phase
        (9, 0.0, ((0, 1), (1, 9))),
        (1, 0.5, ((0, 1),)),  # one epoch cannot be split
    ],
)
def test_fine_tuning_splits_the_epochs(
    epochs: int, at_fraction: float, phases: tuple[tuple[int, int], ...]
) -> None:
    plan = TrainingPlan(MODEL, fine_tune=FineTune(object(), layers=3, at_fraction=at_fraction))
    assert plan.phases(epochs) == phases


def test_validation_callbacks_are_left_out_without_validation_data() -> None:
    on_val, on_loss, plain = _Watching("val_loss"), _Watching("loss"), object()
    plan = TrainingPlan(MODEL, [on_val, on_loss, plain])  # type: ignore[arg-type]
    assert plan.callbacks == (on_val, on_loss, plain)  # a list given becomes a tuple
    assert plan.callbacks_for(validation=True) == (on_val, on_loss, plain)
    assert plan.callbacks_for(validation=False) == (on_loss, plain)
