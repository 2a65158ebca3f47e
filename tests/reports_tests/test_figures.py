"""Figure data computed from records, tested without plotly."""

from __future__ import annotations

import sys

import pytest

from automl.reports import figures
from automl.storage.records import TrialState

from .records import make_record, make_retrain, make_trial, many_trials

C, P, F = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED


def test_optimization_history_tracks_the_best_complete_trial() -> None:
    record = make_record(
        [
            make_trial(0, C, 0.5),
            make_trial(1, P, 0.9),
            make_trial(2, F),
            make_trial(3, C, 0.7),
            make_trial(4, C, 0.6),
        ]
    )
    history = figures.optimization_history(record)
    assert history.numbers == [0, 1, 3, 4]
    assert history.states == ["complete", "pruned", "complete", "complete"]
    assert history.best_so_far == [0.5, 0.5, 0.7, 0.7]  # a pruned value never counts as best


def test_history_minimize() -> None:
    record = make_record(
        [make_trial(0, C, 0.5), make_trial(1, C, 0.3), make_trial(2, C, 0.4)],
        direction="minimize",
        metric="val_loss",
    )
    assert figures.optimization_history(record).best_so_far == [0.5, 0.3, 0.3]


def test_learning_curves_include_pruned_trials_and_are_bounded() -> None:
    record = make_record([make_trial(0, C, 0.5), make_trial(1, P, 0.2)])
    curves = figures.learning_curves(record)
    assert [(c.number, c.state, c.epochs) for c in curves.curves] == [
        (0, "complete", [1, 2, 3]),
        (1, "pruned", [1]),
    ]
    big = figures.learning_curves(many_trials(1000), limit=100)
    assert len(big.curves) == 100 and big.omitted > 800


def test_param_importances_find_the_parameter_that_matters() -> None:
    trials = [
        make_trial(
            i,
            C,
            0.9 if i % 2 else 0.1,
            params={"matters": "yes" if i % 2 else "no", "noise": (i * 7919) % 13},
        )
        for i in range(30)
    ]
    importances = figures.param_importances(make_record(trials))
    assert importances[0].name == "matters"
    assert importances[0].value > 0.8
    assert sum(i.value for i in importances) == pytest.approx(1.0)


def test_importances_need_enough_complete_trials() -> None:
    assert figures.param_importances(make_record([make_trial(0, C, 0.5)])) == []


def test_parallel_coordinates_scale_axes_and_bound_trials() -> None:
    record = make_record([make_trial(i, C, i / 10) for i in range(6)])
    data = figures.parallel_coordinates(record, ["lr", "optimizer"])
    assert [a.name for a in data.axes] == ["lr", "optimizer", "val_accuracy"]
    for axis in data.axes:
        assert all(v is None or 0.0 <= v <= 1.0 for v in axis.scaled)
    assert data.numbers[0] == 5  # best first
    assert {label for _, label in data.axes[1].ticks} == {"adam", "sgd"}
    big = figures.parallel_coordinates(many_trials(2000), [f"param_{i}" for i in range(12)])
    assert len(big.numbers) == figures.MAX_PARALLEL_TRIALS
    assert len(big.axes) == figures.MAX_PARALLEL_PARAMS + 1


def test_slices_and_timeline() -> None:
    record = make_record([make_trial(i, C, i / 10) for i in range(4)] + [make_trial(4, F)])
    items = figures.slices(record, ["optimizer", "lr", "units", "x", "y"])
    assert [s.name for s in items] == ["optimizer", "lr", "units", "x"]
    assert items[0].categorical and not items[1].categorical
    spans = figures.worker_timeline(record)
    assert len(spans) == 5 and spans[0].start == 0 and spans[1].start == 10
    assert {s.slot for s in spans} == {"cpu0", "cpu1"}


def test_winner_takes_the_best_retrained_trial_with_all_seeds() -> None:
    record = make_record([make_trial(0, C, 0.7), make_trial(1, C, 0.9)])
    retrains = [
        make_retrain(1, 0.8, seed=1),
        make_retrain(1, 0.9, seed=0),
        make_retrain(1, 0.85, source="checkpoint"),
        make_retrain(0, 0.6),
    ]
    champion = figures.winner(record, retrains)
    assert champion is not None
    assert champion.trial == 1 and [r.seed for r in champion.runs] == [0, 1]
    assert champion.mean_accuracy == pytest.approx(0.85)
    assert champion.checkpoint is not None and champion.checkpoint.accuracy == 0.85
    assert figures.winner(record, []) is None


def test_figures_do_not_need_plotly() -> None:
    assert "automl.reports.figures" in sys.modules
    import automl.reports.figures as module

    assert "plotly" not in module.__dict__


def test_of_several_retrained_trials_the_winner_is_the_best_mean() -> None:
    """`retrain --top-k 2 --seeds 2`: the search's best (#1, 0.9 on val) retrains worse on
    average than #0, which becomes the winner; its single lucky seed does not decide."""
    record = make_record([make_trial(0, C, 0.89), make_trial(1, C, 0.9)])
    retrains = [
        make_retrain(1, 0.95, seed=1),  # #1's luckiest model is the best single model …
        make_retrain(1, 0.80, seed=0),
        make_retrain(0, 0.91, seed=1),  # … but #0 is better on average
        make_retrain(0, 0.90, seed=0),
    ]
    champion = figures.winner(record, retrains)
    assert champion is not None
    assert champion.trial == 0 and champion.mean_accuracy == pytest.approx(0.905)
    assert champion.search_best == 1
    assert [(t.trial, round(t.mean_accuracy, 3)) for t in champion.others] == [(1, 0.875)]


def test_a_retrained_trial_other_than_a_newer_search_best_is_not_chosen_by_mean() -> None:
    """The search found a new best after #0 and #1 were retrained: it has no retrained model
    yet, so the pick by mean does not apply (export takes the new best's checkpoint)."""
    from automl.storage.tables import chosen_retrained

    retrains = [make_retrain(1, 0.8), make_retrain(0, 0.9)]
    assert chosen_retrained(retrains, search_best=5) is None
    pick = chosen_retrained(retrains, search_best=1)
    assert pick is not None and pick.trial == 0
    assert chosen_retrained([], search_best=1) is None
