"""Search engines: Optuna samplers and pruners by name, and `hp` definitions as Optuna calls.

`suggest` answers one `ParamSpec` with the scheduler's Optuna trial — the define-by-run bridge
that lets a worker's `build(hp)` be answered across the process boundary.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from automl.errors import UsageError
from automl.search.names import PRUNERS, SAMPLERS
from automl.spaces.hyperparameters import Kind, ParamSpec, Value
from automl.spaces.loader import Objective

if TYPE_CHECKING:
    import optuna

REDUCTION_FACTOR = 3
# The first rung (`--min-epochs`): successive halving and Hyperband compare trials from epoch 1.
# A later first rung found better models on MNIST-5k, where epoch 1 ranks slow starters poorly,
# but trains more epochs: at 3 (of 27) B3's saving fell below its 70 % goal (benchmarks/README.md,
# "The first rung").
DEFAULT_MIN_EPOCHS = 1


def suggest(trial: optuna.Trial, spec: ParamSpec) -> Value:
    """Ask Optuna's trial for the value of one definition.

    Int and Float map to `suggest_int` / `suggest_float` (log scale or step); a log scale with a
    step (Keras Tuner's multiplicative step) and Choice / Boolean map to `suggest_categorical`.
    """
    if spec.kind is Kind.FIXED:
        return spec.default
    if spec.kind in (Kind.CHOICE, Kind.BOOLEAN) or (spec.log and spec.step is not None):
        grid = spec.grid()
        assert grid is not None
        return trial.suggest_categorical(spec.name, list(grid))
    assert spec.low is not None and spec.high is not None
    if spec.kind is Kind.INT:
        if spec.log:
            return trial.suggest_int(spec.name, int(spec.low), int(spec.high), log=True)
        return trial.suggest_int(spec.name, int(spec.low), int(spec.high), step=int(spec.step or 1))
    if spec.log:
        return trial.suggest_float(spec.name, spec.low, spec.high, log=True)
    return trial.suggest_float(spec.name, spec.low, spec.high, step=spec.step)


def make_sampler(
    name: str,
    *,
    seed: int,
    slots: int,
    specs: Sequence[ParamSpec] = (),
    objective: Objective | None = None,
    epochs: int = 27,
) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by name.

    Args:
        name: one of `tpe`, `random`, `gp`, `cmaes`, `grid`, `qmc`, or a Keras Tuner oracle
            (`kt-bayesian`, `kt-random`).
        seed: the sampler seed.
        slots: parallel trials; TPE's random start-up trials scale with it.
        specs: the space's parameters (needed by `grid` and the Keras Tuner oracles).
        objective: the study's objective (needed by the Keras Tuner oracles).
        epochs: the epoch budget (Keras Tuner's Hyperband's `max_epochs`).
    """
    import optuna

    if name.startswith("kt-"):
        from automl.search.kt_oracles import ORACLES, KerasTunerSampler

        if name in ORACLES:
            return KerasTunerSampler(name, specs, objective or Objective(), seed, epochs)

    if name == "tpe":
        return tpe_sampler(seed, slots)
    if name == "random":
        return trial_seeded_random_sampler(seed)
    if name == "gp":
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("scipy") is None:
            raise UsageError(
                "--sampler gp needs PyTorch and SciPy (Optuna's GP sampler uses them); install "
                "them (pip install torch scipy) or pick --sampler tpe."
            )
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials(slots))
    if name == "cmaes":
        if importlib.util.find_spec("cmaes") is None:
            raise UsageError(
                "--sampler cmaes needs the cmaes package (Optuna's CMA-ES sampler uses it); "
                "install it (pip install 'automl-keras[cmaes]') or pick --sampler tpe."
            )
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=max(1, slots))
    if name == "qmc":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid_space(specs), seed=seed)
    raise UsageError(f"unknown --sampler {name!r}; use one of {', '.join(SAMPLERS)}.")


def startup_trials(slots: int) -> int:
    """Random trials before a model-based sampler (TPE, GP) proposes: at least 10, and two
    per parallel slot, so that the first proposals do not all start before any result."""
    return max(10, 2 * slots)


def tpe_sampler(
    seed: int,
    slots: int,
    *,
    n_startup_trials: int | None = None,
    constant_liar: bool = True,
) -> optuna.samplers.TPESampler:
    """automl's TPE: multivariate and grouped (conditional spaces), with the constant liar so
    that parallel workers do not propose the same point (B2's `b2_tpe_parallel.py` measures
    both settings). `n_startup_trials` defaults to `startup_trials(slots)`."""
    import optuna

    with warnings.catch_warnings():
        # `group` is marked experimental; it is what conditional spaces need.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=n_startup_trials or startup_trials(slots),
            multivariate=True,
            group=True,
            constant_liar=constant_liar,
        )


def trial_seeded_random_sampler(seed: int) -> optuna.samplers.BaseSampler:
    """Optuna's random sampler, but each value drawn from (seed, draw index, parameter name).

    Optuna's own draws from one stream in the order values are asked for, and parallel trials
    ask interleaved: the configurations of a seeded random search would then depend on the
    number of workers and on timing. Here the k-th trial that draws (trials run again with
    fixed parameters, such as the retry of a killed trial, do not count) gets the same
    configuration whatever ran beside it and whatever failed before it, so 1-worker and
    N-worker runs (B4), and a search with kills and the same search without (B9), train the
    same models.
    """
    import zlib

    import optuna

    class TrialSeededRandomSampler(optuna.samplers.RandomSampler):
        def __init__(self) -> None:
            super().__init__(seed=seed)
            self._draws: dict[int, int] = {}  # trial number -> its draw index

        def sample_independent(
            self, study: Any, trial: Any, param_name: str, param_distribution: Any
        ) -> Any:
            index = self._draws.get(trial.number)
            if index is None:
                index = sum(
                    1
                    for earlier in study.get_trials(deepcopy=False)
                    if earlier.number < trial.number and "fixed_params" not in earlier.system_attrs
                )
                self._draws[trial.number] = index
            key = zlib.crc32(f"{seed}:{index}:{param_name}".encode())
            draw = optuna.samplers.RandomSampler(seed=key)
            return draw.sample_independent(study, trial, param_name, param_distribution)

    return TrialSeededRandomSampler()


def grid_space(specs: Sequence[ParamSpec]) -> dict[str, list[Value]]:
    """Every value of every parameter, for the grid sampler; continuous ones are refused."""
    space: dict[str, list[Value]] = {}
    for spec in specs:
        if spec.kind is Kind.FIXED:
            continue
        grid = spec.grid()
        if grid is None:
            raise UsageError(
                f"--sampler grid needs discrete parameters, but {spec.kind.value} '{spec.name}' "
                f"({spec.location}) is continuous; give it a step or pick another --sampler."
            )
        space.setdefault(spec.name, list(grid))
    return space


def min_epochs_problem(min_epochs: int, *, epochs: int, pruner: str) -> str | None:
    """Why `--min-epochs` cannot be used with this budget and pruner, or None."""
    if min_epochs < 1:
        return f"--min-epochs must be at least 1, got {min_epochs}"
    if pruner in ("sha", "hyperband") and min_epochs >= epochs and min_epochs > 1:
        return (
            f"--min-epochs {min_epochs} leaves no epoch to prune at with --epochs {epochs}; "
            f"give --min-epochs below {epochs}, or --pruner none to train every trial fully"
        )
    return None


def make_pruner(name: str, *, epochs: int, min_epochs: int = 1) -> optuna.pruners.BasePruner:
    """An Optuna pruner by name. Successive halving and Hyperband compare trials from epoch
    `min_epochs` on (their first rung); Hyperband's maximum resource is `epochs`."""
    import optuna

    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=min_epochs, max_resource=epochs, reduction_factor=REDUCTION_FACTOR
        )
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_epochs, reduction_factor=REDUCTION_FACTOR
        )
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=1)
    if name == "patient":
        return optuna.pruners.PatientPruner(
            optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1), patience=2
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"unknown --pruner {name!r}; use one of {', '.join(PRUNERS)}.")


@dataclass(frozen=True)
class Bracket:
    """One Hyperband bracket (or the single successive-halving ladder): its decision epochs."""

    index: int
    rungs: tuple[int, ...]


def pruner_budget(
    name: str, *, epochs: int, min_epochs: int = 1
) -> tuple[str, tuple[Bracket, ...]]:
    """A one-line description of the pruner's budget and its brackets and rungs.

    Rungs are the epochs at which a trial is compared with its peers; a bracket with no rung
    below `epochs` trains its trials fully.
    """
    eta = REDUCTION_FACTOR
    if name in ("hyperband", "sha"):
        count = 1
        if name == "hyperband":
            # Optuna's: floor(log_eta(max_resource / min_resource)) + 1
            count = math.floor(math.log(epochs / min_epochs) / math.log(eta) + 1e-9) + 1
        brackets = []
        for index in range(count):
            rungs = []
            rung = 0
            while True:
                step = min_epochs * eta ** (index + rung)
                if step >= epochs:
                    break
                rungs.append(step)
                rung += 1
            brackets.append(Bracket(index, tuple(rungs)))
        kind = "Hyperband" if name == "hyperband" else "successive halving"
        return (
            f"{kind}, η={eta}, {min(min_epochs, epochs)}–{epochs} epochs per trial, "
            f"{count} bracket(s)",
            tuple(brackets),
        )
    described = {
        "median": "median: stop a trial below the median of earlier trials at the same epoch "
        "(after 5 trials, from epoch 2)",
        "percentile": "percentile: stop a trial in the worst 75 % at the same epoch (after 5 "
        "trials, from epoch 2)",
        "patient": "patient median: like median, but only after 2 epochs without improvement",
        "none": f"no pruning: every trial trains up to {epochs} epochs",
    }
    return described[name], ()
