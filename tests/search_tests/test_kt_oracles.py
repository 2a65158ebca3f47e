"""Keras Tuner's oracles as engines (`--sampler kt-bayesian | kt-random`): the values trials get
are the oracle's, the oracle learns every finished trial (a resumed study's too), conditions
carry over, and a search runs end to end on the same scheduler and store."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from automl.search.kt_oracles import KerasTunerSampler, keras_tuner_space
from automl.spaces.hyperparameters import HyperParameters
from automl.spaces.loader import Objective

from ..test_trial_cli import automl

pytest.importorskip("keras_tuner")


def _specs() -> list:  # type: ignore[type-arg]
    hp = HyperParameters()
    hp.Float("x", -4.0, 4.0)
    kind = hp.Choice("kind", ["a", "b"])
    with hp.conditional_scope("kind", "b"):
        hp.Int("shift", 0, 3)
    del kind
    return hp.space


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -4.0, 4.0)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    shift = trial.suggest_int("shift", 0, 3) if kind == "b" else 0
    return -((x - 1.0) ** 2) - 0.1 * shift


def test_the_oracle_chooses_every_value_and_learns_every_result() -> None:
    sampler = KerasTunerSampler("kt-random", _specs(), Objective("score", "maximize"), seed=3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=12)
    oracle = sampler._oracle
    asked = {t.trial_id: t for t in oracle.trials.values()}
    assert len(asked) == 12 and all(t.status == "COMPLETED" for t in asked.values())
    for trial, theirs in zip(study.trials, asked.values(), strict=True):
        assert trial.params == theirs.hyperparameters.values  # inactive 'shift' absent in both
        assert theirs.score == pytest.approx(trial.value)
    # The conditional parameter is Keras Tuner's conditional parameter.
    space = keras_tuner_space(_specs())
    shift = next(h for h in space.space if h.name == "shift")
    assert shift.conditions and shift.conditions[0].name == "kind"


@pytest.mark.parametrize("kind", ["kt-bayesian", "kt-random"])
def test_the_same_seed_gives_the_same_search_seed_0_included(kind: str) -> None:
    # Keras Tuner reads seed=0 as "no seed" (`seed or random.randint(...)`); --seed defaults to 0.
    def proposals(seed: int) -> list[dict]:  # type: ignore[type-arg]
        sampler = KerasTunerSampler(kind, _specs(), Objective("score", "maximize"), seed=seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(_objective, n_trials=12)
        # A resumed search (a new sampler on the same study) proposes the same too.
        study.sampler = KerasTunerSampler(kind, _specs(), Objective("score", "maximize"), seed)
        study.optimize(_objective, n_trials=12)
        return [t.params for t in study.trials]

    assert proposals(0) == proposals(0)
    assert proposals(1) == proposals(1)
    assert proposals(0) != proposals(1)


def test_a_resumed_oracle_learns_each_earlier_trial_as_it_ran_conditions_included() -> None:
    # Keras Tuner's `name in hps` means "active now": it dropped every conditional value of the
    # earlier trials, and the oracle then filled them with unseeded random draws, so a resumed
    # GP learned made-up points and the same resume gave another search each time.
    objective = Objective("score", "maximize")
    study = optuna.create_study(direction="maximize")
    study.sampler = KerasTunerSampler("kt-random", _specs(), objective, seed=0)
    study.optimize(_objective, n_trials=10)
    assert any("shift" in t.params for t in study.trials)
    resumed = KerasTunerSampler("kt-bayesian", _specs(), objective, seed=1)
    resumed._load_finished(study)
    learned = list(resumed._oracle.trials.values())
    assert [t.hyperparameters.values for t in learned] == [t.params for t in study.trials]
    assert [t.score for t in learned] == [t.value for t in study.trials]


def test_bayesian_optimisation_finds_the_optimum_and_a_resumed_study_is_learned() -> None:
    objective = Objective("score", "maximize")
    study = optuna.create_study(direction="maximize")
    study.sampler = KerasTunerSampler("kt-bayesian", _specs(), objective, seed=0)
    study.optimize(_objective, n_trials=14)
    # A new sampler (a resumed search) starts from every finished trial of the study.
    resumed = KerasTunerSampler("kt-bayesian", _specs(), objective, seed=1)
    study.sampler = resumed
    study.optimize(_objective, n_trials=10)
    assert len(resumed._oracle.trials) == 24
    best = study.best_trial
    assert abs(best.params["x"] - 1.0) < 0.5 and best.value > -0.3
    # After its random start-up points, the GP's proposals concentrate near the optimum.
    late = [t.params["x"] for t in study.trials[-6:]]
    assert sum(abs(x - 1.0) < 1.5 for x in late) >= 4, late


def test_a_search_runs_on_keras_tuners_bayesian_oracle(tmp_path: Path) -> None:
    from ..conftest import REPO

    space = tmp_path / "fn.py"
    space.write_text((REPO / "tests" / "search_tests" / "function_space.py").read_text())
    result = automl(
        "search", "fn.py", "--trials", "8", "--workers", "2", "--executor", "function",
        "--epochs", "3", "--sampler", "kt-bayesian", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "8 of 8 finished" in result.stdout
    from automl.storage.store import StudyStore

    record = StudyStore(f"sqlite:///{tmp_path / 'runs' / 'automl.db'}").record("fn")
    assert record.settings.sampler == "kt-bayesian" and record.finished == 8


def test_keras_tuners_hyperband_promotes_trials_that_continue_their_parents(
    tmp_path: Path,
) -> None:
    """One Hyperband bracket at max_epochs 9 (factor 3): 9 trials of 1 epoch, the best 3 go on
    to 3 epochs, the best of those to 9; each promotion continues its parent's final state.
    (One worker: with more, Keras Tuner starts the next bracket while a round still runs.)"""
    from ..conftest import REPO

    space = tmp_path / "fn.py"
    space.write_text((REPO / "tests" / "search_tests" / "function_space.py").read_text())
    result = automl(
        "search", "fn.py", "--trials", "13", "--workers", "1", "--executor", "function",
        "--epochs", "9", "--sampler", "kt-hyperband", "--patience", "0", "--quiet",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    from automl.storage.store import StudyStore

    record = StudyStore(f"sqlite:///{tmp_path / 'runs' / 'automl.db'}").record("fn")
    assert record.settings.pruner == "none"  # Hyperband's rounds are the pruning
    trials = sorted(record.trials, key=lambda t: t.number)
    first, second, third = trials[:9], trials[9:12], trials[12:]
    assert all(t.epochs_run == 1 and t.resumed_epoch is None for t in first)
    assert [t.resumed_epoch for t in second] == [1, 1, 1]
    assert all(t.epochs_run == 3 for t in second) and third[0].epochs_run == 9
    assert third[0].resumed_epoch == 3
    # The promoted are the best of the round before, with their parameters.
    best_three = sorted(first, key=lambda t: -(t.value or -1e9))[:3]
    assert sorted(map(_key, second)) == sorted(map(_key, best_three))
    assert _key(third[0]) == _key(max(second, key=lambda t: t.value or -1e9))
    # A promotion carries its parent's first epoch over: its curve starts where it left off.
    for child in second:
        parent = next(t for t in first if _key(t) == _key(child))
        assert child.intermediate[1] == parent.intermediate[1]
    # The final states kept for promotions are gone once the run ends.
    resume = tmp_path / "runs" / "fn" / "resume"
    assert not resume.is_dir() or not any(resume.iterdir())


def _key(trial: object) -> tuple[tuple[str, object], ...]:
    return tuple(sorted(trial.params.items()))  # type: ignore[attr-defined]
