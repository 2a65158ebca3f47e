"""Keras Tuner's oracles as engines: `--sampler kt-bayesian | kt-random | kt-hyperband`.

An Optuna sampler that asks a Keras Tuner oracle for each trial's configuration, so the same
scheduler, workers, pruner and store run it, and every command and report works on the study.
`kt-bayesian` is Keras Tuner's Gaussian-process Bayesian optimisation (scikit-learn and SciPy,
no PyTorch, which Optuna's own `gp` sampler needs); `kt-random` its de-duplicating random search;
`kt-hyperband` its Hyperband, which decides each trial's epochs itself: the scheduler asks it
before launching (`plan_launch`), and a promoted trial continues from the model its parent
ended with, optimizer state included (Keras Tuner itself reloads the weights only). Optuna's
pruner is then off: Hyperband's rounds are the pruning.

The oracle gets the space the preflight recorded (conditions included), each finished trial's
objective (a pruned trial its last reported value: it was judged on it) and, when a study
resumes, every trial finished before. A value the oracle does not give (a parameter outside the
recorded space) is drawn at random.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from automl.spaces.hyperparameters import Kind, ParamSpec
from automl.spaces.loader import Objective

ORACLES = ("kt-bayesian", "kt-random", "kt-hyperband")
HYPERBAND_FACTOR = 3


@dataclass(frozen=True)
class LaunchPlan:
    """What Keras Tuner's Hyperband decided for the next trial.

    Attributes:
        epochs: train until this epoch.
        parent: the Optuna number of the trial whose final model it continues, or None.
        initial_epoch: the epoch that model ended at (0 without a parent).
    """

    epochs: int
    parent: int | None
    initial_epoch: int


class KerasTunerSampler(optuna.samplers.BaseSampler):
    """Optuna's sampler interface over a Keras Tuner oracle.

    Args:
        kind: `kt-bayesian`, `kt-random` or `kt-hyperband`.
        specs: the space's parameters (the preflight's).
        objective: the study's objective.
        seed: the search's seed (`--seed`, 0 included). The oracle gets `seed + 1`: Keras
            Tuner reads a seed of 0 as none and draws one at random (`seed or randint(...)`),
            which made the default `--seed 0` unrepeatable.
        max_epochs: the most epochs of a trial (Hyperband's `max_epochs`). Defaults to `27`.
    """

    def __init__(
        self,
        kind: str,
        specs: Sequence[ParamSpec],
        objective: Objective,
        seed: int,
        max_epochs: int = 27,
    ) -> None:
        import keras_tuner

        self._kind = kind
        self._specs = list(specs)
        self._objective = objective
        self._folder = tempfile.TemporaryDirectory(prefix="automl-kt-oracle-")
        direction = "max" if objective.direction == "maximize" else "min"
        arguments: dict[str, Any] = {
            "objective": keras_tuner.Objective(objective.metric, direction),
            "hyperparameters": keras_tuner_space(self._specs),
            "seed": oracle_seed(seed),
            "max_trials": 1_000_000,  # --trials decides
            "max_consecutive_failed_trials": 1_000_000,  # --max-failures decides
            "tune_new_entries": True,
            "allow_new_entries": True,
        }
        if kind == "kt-bayesian":
            self._oracle = keras_tuner.oracles.BayesianOptimizationOracle(**arguments)
        elif kind == "kt-hyperband":
            del arguments["max_trials"]
            self._oracle = keras_tuner.oracles.HyperbandOracle(
                **arguments,
                max_epochs=max_epochs,
                factor=HYPERBAND_FACTOR,
                hyperband_iterations=None,  # brackets go on until --trials is reached
            )
        else:
            self._oracle = keras_tuner.oracles.RandomSearchOracle(**arguments)
        self._oracle.verbose = 0
        self._oracle._set_project_dir(self._folder.name, "oracle")
        self._fallback = optuna.samplers.RandomSampler(seed=seed)
        self._running: dict[int, Any] = {}  # Optuna trial number -> the oracle's trial
        self._numbers: dict[str, int] = {}  # the oracle's trial id -> Optuna trial number
        self._planned: Any = None  # the oracle's trial for the next launch (Hyperband)
        self._launches = 0
        self._lock = threading.Lock()
        self._loaded = kind == "kt-hyperband"  # its brackets restart with each run

    @property
    def plans_launches(self) -> bool:
        """Whether the oracle decides each trial's epochs (the scheduler asks `plan_launch`)."""
        return self._kind == "kt-hyperband"

    def plan_launch(self) -> LaunchPlan | None:
        """The epochs (and the trial to continue) of the next trial, or None when the oracle
        has none to give now (Hyperband waits for a round to finish)."""
        with self._lock:
            if self._planned is None:
                self._launches += 1
                asked = self._oracle.create_trial(tuner_id=f"launch-{self._launches}")
                if asked.status != "RUNNING":
                    return None
                self._planned = asked
            values = self._planned.hyperparameters.values
            parent_id = values.get("tuner/trial_id")
            return LaunchPlan(
                epochs=int(values["tuner/epochs"]),
                parent=self._numbers.get(parent_id) if parent_id is not None else None,
                initial_epoch=int(values.get("tuner/initial_epoch", 0)),
            )

    def launched(self, number: int) -> None:
        """The Optuna trial `number` runs the planned trial."""
        with self._lock:
            if self._planned is not None:
                self._running[number] = self._planned
                self._numbers[self._planned.trial_id] = number
                self._planned = None

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {}

    def sample_relative(
        self, study: Any, trial: Any, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self, study: Any, trial: Any, param_name: str, param_distribution: Any
    ) -> Any:
        values = self._values_of(study, trial)
        if param_name in values:
            value = _fitted(param_distribution, values[param_name])
            if value is not None:
                return value
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        with self._lock:
            asked = self._running.pop(trial.number, None)
            if asked is None:
                return
            score = values[0] if values else _last_report(trial)
            if state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) and (
                score is not None
            ):
                self._oracle.update_trial(asked.trial_id, {self._objective.metric: float(score)})
                asked.status = "COMPLETED"
            else:
                asked.status = "FAILED"
            self._oracle.end_trial(asked)

    def _values_of(self, study: Any, trial: Any) -> dict[str, Any]:
        with self._lock:
            if not self._loaded:
                self._load_finished(study)
                self._loaded = True
            asked = self._running.get(trial.number)
            if asked is None:
                if self.plans_launches:
                    return {}  # a retry of a killed trial: its values are enqueued
                asked = self._oracle.create_trial(tuner_id=f"optuna-{trial.number}")
                if asked.status != "RUNNING":  # the oracle has nothing new to try
                    return {}
                self._running[trial.number] = asked
                self._numbers[asked.trial_id] = trial.number
            return dict(asked.hyperparameters.values)

    def _load_finished(self, study: Any) -> None:
        """Tell the oracle the trials a resumed study finished before this run."""
        from keras_tuner.src.engine import trial as trial_module

        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        for finished in study.get_trials(deepcopy=False, states=states):
            score = finished.value if finished.value is not None else _last_report(finished)
            if score is None:
                continue
            hyperparameters = self._oracle.hyperparameters.copy()
            _set_as_it_ran(hyperparameters, finished.params)
            earlier = trial_module.Trial(
                hyperparameters=hyperparameters,
                trial_id=f"study-{finished.number}",
                status="COMPLETED",
            )
            direction = "max" if self._objective.direction == "maximize" else "min"
            earlier.metrics.register(self._objective.metric, direction=direction)
            earlier.metrics.update(self._objective.metric, float(score))
            earlier.score, earlier.best_step = float(score), 0
            self._oracle.trials[earlier.trial_id] = earlier
            self._oracle.end_order.append(earlier.trial_id)
            self._oracle._record_values(earlier)


def _set_as_it_ran(hyperparameters: Any, params: dict[str, Any]) -> None:
    """Set `hyperparameters.values` to an earlier trial's values as Keras Tuner holds them:
    every parameter of the space it set, conditional ones included, and a parameter active
    but unset (added to the space later) at its default, as the oracle's GP reads it. Filled
    in place, parents first, so `is_active` sees each parent's value.

    Not `name in hyperparameters`, which means "active for the current values" and dropped
    every conditional value; the oracle then filled them with unseeded random draws.
    """
    values: dict[str, Any] = {}
    hyperparameters.values = values
    for hp in hyperparameters.space:
        if hp.name in params:
            values[hp.name] = params[hp.name]
        elif hyperparameters.is_active(hp):
            values[hp.name] = hp.default


def oracle_seed(seed: int) -> int:
    """The seed a Keras Tuner oracle gets for the search's `seed`: never 0, which Keras Tuner
    replaces with a random one; one to one, so distinct seeds stay distinct."""
    return seed + 1


def keras_tuner_space(specs: Sequence[ParamSpec]) -> Any:
    """Keras Tuner `HyperParameters` defining the same parameters, conditions included."""
    import keras_tuner

    hps = keras_tuner.HyperParameters()
    for spec in specs:
        with contextlib.ExitStack() as scopes:
            for condition in spec.conditions:
                scopes.enter_context(
                    hps.conditional_scope(condition.parent, list(condition.values))
                )
            _define(hps, spec)
    return hps


def _define(hps: Any, spec: ParamSpec) -> None:
    sampling = "log" if spec.log else "linear"
    if spec.kind is Kind.INT:
        assert spec.low is not None and spec.high is not None
        hps.Int(
            spec.name,
            int(spec.low),
            int(spec.high),
            step=int(spec.step) if spec.step else None,
            sampling=sampling,
            default=spec.default,
        )
    elif spec.kind is Kind.FLOAT:
        assert spec.low is not None and spec.high is not None
        hps.Float(
            spec.name, spec.low, spec.high, step=spec.step, sampling=sampling, default=spec.default
        )
    elif spec.kind is Kind.CHOICE:
        hps.Choice(spec.name, list(spec.choices), ordered=spec.ordered, default=spec.default)
    elif spec.kind is Kind.BOOLEAN:
        hps.Boolean(spec.name, default=bool(spec.default))
    else:
        hps.Fixed(spec.name, spec.default)


def _fitted(distribution: Any, value: Any) -> Any:
    """`value` as `distribution` takes it, or None when it is not one of its values."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        for choice in distribution.choices:
            if choice == value and type(choice) is type(value):
                return choice
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not distribution.low <= value <= distribution.high:
        return None
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return int(value)
    return float(value)


def _last_report(trial: Any) -> float | None:
    reports = trial.intermediate_values
    return float(reports[max(reports)]) if reports else None
