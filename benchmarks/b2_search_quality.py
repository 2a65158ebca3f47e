"""B2 — search quality for the budget: automl's default (TPE + its default pruner, successive
halving) vs Keras Tuner's `Hyperband` run directly (max_epochs 27, factor 3) vs random search
without pruning.

All three search the same space (`spaces/cnn.py`'s `build`, which runs unchanged under Keras
Tuner) on the same data splits. Keras Tuner runs first and sets the budget: the other two get
the same wall time. For each run the best-so-far validation accuracy is recorded against
cumulative epochs and wall time; the report gives, per seed, the epochs and seconds automl
needed to reach Keras Tuner's final best, and each winner's test accuracy.

    python benchmarks/b2_search_quality.py [--data digits|mnist5k] [--seeds 5] [--max-epochs 27]
    python benchmarks/b2_search_quality.py --data digits --replot   # figure from saved JSON
    python benchmarks/b2_search_quality.py --data digits --first-seed 1 --seeds 1 --append
    python benchmarks/b2_search_quality.py --data digits --markdown  # README table from saved JSON

A seed saves after each arm. A seed cut short (a session's end) keeps its Keras Tuner
Hyperband run, which fixes the wall time, and the arms that finished; `--add-arms NAMES
--first-seed S --seeds 1` runs the rest later on that wall time, and an added Keras Tuner arm
moves the target every arm is timed to.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from automl.search import SearchConfig
from automl.search.engines import DEFAULT_MIN_EPOCHS
from automl.storage.attributes import SearchSettings
from benchmarks.common import (
    FLAGSHIP,
    RESULTS,
    data_source,
    median,
    search_cnn,
    space_tag,
    table,
    write_figure,
    write_result,
)

Curve = list[tuple[float, int, float]]  # (seconds, cumulative epochs, best so far)


KERAS_TUNER_ARMS = ("keras_tuner_hyperband", "keras_tuner_bayesian")


class _Clock:
    """Best-so-far validation accuracy per epoch, as (seconds, cumulative epochs, best)."""

    def __init__(self, budget: float | None = None) -> None:
        self.started = time.perf_counter()
        self.budget = budget
        self.epochs = 0
        self.best = -math.inf
        self.curve: Curve = []

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def out_of_time(self) -> bool:
        return self.budget is not None and self.elapsed >= self.budget

    def callback(self) -> Any:
        """A Keras callback recording each epoch (and stopping the fit once out of time)."""
        import keras

        clock = self

        class Record(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                clock.epochs += 1
                clock.best = max(clock.best, float((logs or {}).get("val_accuracy", -1)))
                clock.curve.append((clock.elapsed, clock.epochs, clock.best))
                if clock.out_of_time:
                    self.model.stop_training = True

        return Record()


def _fit(data: Any, seed: int) -> Any:
    """The `fit` every direct Keras Tuner or Optuna arm trains with: automl's input pipeline at
    the configuration's batch size (the same one automl's trials use)."""
    from automl.data.pipeline import make_pipeline

    def fit(hp: Any, model: Any, **kwargs: Any) -> Any:
        batch = hp.get("batch_size") if "batch_size" in hp else 32
        train = make_pipeline(data.train, batch_size=batch, training=True, seed=seed)
        val = make_pipeline(data.val, batch_size=256, training=False)
        kwargs.pop("validation_data", None)
        return model.fit(train, validation_data=val, **kwargs)

    return fit


def _test_accuracy(model: Any, data: Any) -> float:
    import numpy as np

    from automl.data.pipeline import make_pipeline

    test = make_pipeline(data.test, batch_size=256, training=False)
    return float(np.mean(np.argmax(model.predict(test, verbose=0), 1) == data.test.y))


def _space_and_info(data: Any, max_epochs: int, space_path: Path) -> tuple[Any, Any]:
    """The space file, loaded, and the `SpaceInfo` its `build` gets (as automl's trials)."""
    from automl.spaces import SpaceInfo, load_space

    info = SpaceInfo(
        data.input_shape, data.num_classes, data.class_names, len(data.train), max_epochs
    )
    return load_space(space_path), info


def _keras_tuner_search(
    data: Any,
    seed: int,
    max_epochs: int,
    space_path: Path,
    clock: _Clock,
    make_tuner: Callable[[Any], Any],
) -> dict[str, Any]:
    """Run a Keras Tuner tuner (`make_tuner(hypermodel)`) over the space, every trial at
    `max_epochs`, timed by `clock`; the curve, the seconds and its best model's test accuracy."""
    import keras
    import keras_tuner

    space, info = _space_and_info(data, max_epochs, space_path)
    fit = _fit(data, seed)

    class HyperModel(keras_tuner.HyperModel):
        def build(self, hp: Any) -> Any:
            return space.build(hp, info)

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            return fit(hp, model, **kwargs)

    tuner = make_tuner(HyperModel())
    tuner.search(epochs=max_epochs, callbacks=[clock.callback()], verbose=0)
    accuracy = _test_accuracy(tuner.get_best_models(1)[0], data)
    keras.backend.clear_session()
    return {"curve": clock.curve, "seconds": clock.elapsed, "test_accuracy": accuracy}


def keras_tuner_arm(
    data: Any, seed: int, max_epochs: int, folder: Path, space_path: Path = FLAGSHIP
) -> dict[str, Any]:
    """Keras Tuner's `Hyperband` run directly (factor 3): it sets every other arm's wall time."""
    import keras_tuner

    return _keras_tuner_search(
        data,
        seed,
        max_epochs,
        space_path,
        _Clock(),
        lambda hypermodel: keras_tuner.Hyperband(
            hypermodel,
            objective="val_accuracy",
            max_epochs=max_epochs,
            factor=3,
            seed=seed,
            directory=str(folder),
            project_name="kt",
            overwrite=True,
        ),
    )


def keras_tuner_bayesian_arm(
    data: Any, seed: int, max_epochs: int, seconds: float, folder: Path, space_path: Path
) -> dict[str, Any]:
    """Keras Tuner's `BayesianOptimization` run directly, as its guide shows it: every trial
    trains `max_epochs` epochs (no pruning, no early stopping), until the wall time is spent."""
    import keras_tuner

    clock = _Clock(budget=seconds)

    class Oracle(keras_tuner.oracles.BayesianOptimizationOracle):
        def populate_space(self, trial_id: str) -> dict[str, Any]:
            if clock.out_of_time:
                return {"status": keras_tuner.engine.trial.TrialStatus.STOPPED, "values": None}
            return super().populate_space(trial_id)

    return _keras_tuner_search(
        data,
        seed,
        max_epochs,
        space_path,
        clock,
        lambda hypermodel: keras_tuner.Tuner(
            oracle=Oracle(objective="val_accuracy", max_trials=10_000, seed=seed),
            hypermodel=hypermodel,
            directory=str(folder),
            project_name="kt-bayesian",
            overwrite=True,
        ),
    )


def optuna_arm(
    data: Any, seed: int, max_epochs: int, seconds: float, space_path: Path
) -> dict[str, Any]:
    """A hand-written Optuna loop, as its documentation shows one: `TPESampler(seed=…)` and
    `HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)`, one process,
    `trial.report` / `trial.should_prune` after each epoch, `study.optimize(timeout=…)`. The
    winner's test accuracy is its best epoch's weights (kept in memory), as Keras Tuner's."""
    import keras
    import optuna

    from automl.search.engines import suggest
    from automl.spaces import HyperParameters

    space, info = _space_and_info(data, max_epochs, space_path)
    clock = _Clock(budget=seconds)
    fit = _fit(data, seed)
    winner: dict[str, Any] = {"value": -math.inf, "test_accuracy": None}

    class OptunaAnswers:
        def __init__(self, trial: optuna.Trial) -> None:
            self.trial = trial

        def answer(self, spec: Any) -> Any:
            return suggest(self.trial, spec)

    def objective(trial: optuna.Trial) -> float:
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed * 1000 + trial.number)
        hp = HyperParameters(OptunaAnswers(trial))
        model = space.build(hp, info)
        best: dict[str, Any] = {"value": -math.inf, "weights": None}

        class Report(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                value = float((logs or {}).get("val_accuracy", -1))
                if value > best["value"]:
                    best["value"], best["weights"] = value, self.model.get_weights()
                trial.report(value, epoch + 1)
                if trial.should_prune():
                    self.model.stop_training = True
                    best["pruned"] = True

        fit(hp, model, epochs=max_epochs, callbacks=[clock.callback(), Report()], verbose=0)
        if best.get("pruned"):
            raise optuna.TrialPruned()
        if best["value"] > winner["value"]:
            model.set_weights(best["weights"])
            winner.update(value=best["value"], test_accuracy=_test_accuracy(model, data))
        return float(best["value"])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max_epochs, reduction_factor=3
        ),
    )
    study.optimize(objective, timeout=seconds)
    keras.backend.clear_session()
    return {
        "curve": clock.curve,
        "seconds": clock.elapsed,
        "test_accuracy": winner["test_accuracy"],
        "trials": len(study.trials),
    }


def automl_arm(
    data_source: str,
    seed: int,
    max_epochs: int,
    seconds: float,
    sampler: str,
    pruner: str,
    space_path: Path = FLAGSHIP,
    min_epochs: int | None = None,
) -> dict[str, Any]:
    """automl's search with this sampler and pruner (first rung `min_epochs`, None for the
    default) and its defaults otherwise (patience included, as a user runs it), in a
    temporary folder, stopped at `seconds`."""
    from automl.data import DataOptions
    from automl.deploy import retrain_study

    (summary, results), elapsed = search_cnn(
        # Its winner's checkpoint, scored while the study's folder still exists.
        lambda summary: (
            summary,
            retrain_study("b2", storage=summary.storage_url, from_checkpoint=True),
        ),
        space=space_path,
        trials=10_000,
        data=data_source,
        data_options=DataOptions(seed=0),
        epochs=max_epochs,
        sampler=sampler,
        pruner=pruner,
        min_epochs=min_epochs,
        seed=seed,
        timeout=seconds,
        study="b2",
        keep_checkpoints=1,
    )
    record = summary.record
    origin = min(t.started for t in record.trials if t.started)
    finished = [(t.completed, t) for t in record.trials if t.completed]
    curve: Curve = []
    epochs = 0
    best = -math.inf
    for completed, trial in sorted(finished, key=lambda pair: pair[0]):
        epochs += trial.epochs_run
        if trial.value is not None and trial.state.value == "complete":
            best = max(best, trial.value)
        elif trial.intermediate:
            best = max(best, max(trial.intermediate.values()))
        curve.append(((completed - origin).total_seconds(), epochs, best))
    # Each trial as stored, so the curve can be recounted another way later (the curve above
    # credits a trial's value and all its epochs when it ends; Keras Tuner's arm is per epoch).
    trials = [
        {
            "number": t.number,
            "state": t.state.value,
            "started": (t.started - origin).total_seconds() if t.started else None,
            "completed": (t.completed - origin).total_seconds() if t.completed else None,
            "intermediate": dict(t.intermediate),
            # What the trial trained: which configurations the search spends its time on.
            "params": dict(t.params),
            "params_count": t.params_count,
        }
        for t in record.trials
    ]
    return {
        "curve": curve,
        "trials": trials,
        "sampler": sampler,
        "pruner": pruner,
        "min_epochs": record.settings.first_rung,  # the first rung it searched with
        "seconds": elapsed,
        "test_accuracy": results[0].metrics["accuracy"] if results else None,
    }


def per_epoch_curve(trials: list[dict[str, Any]]) -> Curve:
    """automl's curve recounted epoch by epoch, as Keras Tuner's arm is counted: every epoch's
    validation accuracy is credited when that epoch ends, its time interpolated evenly between
    its trial's start and end (the store keeps per-epoch values, not per-epoch times)."""
    events: list[tuple[float, float]] = []
    for trial in trials:
        values = {int(step): value for step, value in trial["intermediate"].items()}
        if not values or trial["started"] is None or trial["completed"] is None:
            continue
        last = max(values)
        span = trial["completed"] - trial["started"]
        events += [(trial["started"] + span * step / last, values[step]) for step in values]
    curve: Curve = []
    best = -math.inf
    for epochs, (seconds, value) in enumerate(sorted(events), start=1):
        best = max(best, value)
        curve.append((seconds, epochs, best))
    return curve


def reached(curve: Curve, target: float) -> tuple[float | None, int | None]:
    for seconds, epochs, best in curve:
        if best >= target - 1e-9:
            return seconds, epochs
    return None, None


def curves_figure(runs: list[dict[str, Any]], data: str) -> Any:
    """Best-so-far validation accuracy against cumulative epochs (left) and wall time (right)."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, shared_yaxes=True)
    for run in runs:
        for name, arm in run["arms"].items():
            for column, index in ((1, 1), (2, 0)):
                figure.add_scatter(
                    x=[c[index] for c in arm["curve"]],
                    y=[c[2] for c in arm["curve"]],
                    mode="lines",
                    line={"color": ARM_COLOURS[name], "shape": "hv"},
                    name=f"{name} seed {run['seed']}",
                    legendgroup=f"{name}{run['seed']}",
                    showlegend=column == 1,
                    row=1,
                    col=column,
                )
    figure.update_xaxes(title_text="cumulative epochs", row=1, col=1)
    figure.update_xaxes(title_text="wall seconds", row=1, col=2)
    figure.update_yaxes(title_text="best val_accuracy so far", row=1, col=1)
    # Zoom on the contest: the first minutes of every arm climb from chance.
    finals = [a["curve"][-1][2] for r in runs for a in r["arms"].values() if a["curve"]]
    if finals:
        figure.update_yaxes(range=[min(finals) - 0.05, 1.002])
    figure.update_layout(title=f"B2 ({data}): best validation accuracy for the budget")
    return figure


# Every arm a run may hold, in table order (automl_kt_bayesian: with --kt-bayesian).
ARMS = (
    "automl_default",
    "automl_min_epochs_3",
    "automl_hyperband",
    "automl_kt_bayesian",
    "keras_tuner_hyperband",
    "keras_tuner_bayesian",
    "optuna_tpe_hyperband",
    "random_no_pruning",
)
# The arms a run has unless --arms names others (Keras Tuner's Hyperband always runs: it sets
# the wall time).
DEFAULT_ARMS = (
    "automl_default",
    "automl_min_epochs_3",
    "keras_tuner_bayesian",
    "optuna_tpe_hyperband",
    "random_no_pruning",
)


# automl's arms: sampler, pruner and first rung (None: the default).
AUTOML_ARMS: dict[str, tuple[str, str, int | None]] = {
    "automl_default": (SearchConfig.sampler, SearchConfig.pruner, None),
    "automl_min_epochs_3": (SearchConfig.sampler, SearchConfig.pruner, 3),
    "automl_hyperband": (SearchConfig.sampler, "hyperband", None),
    "automl_kt_bayesian": ("kt-bayesian", SearchConfig.pruner, None),
    "random_no_pruning": ("random", "none", None),
}
# automl's defaults, as its arm records them (the first rung the search resolved).
DEFAULT_AUTOML_ARM = {
    "sampler": AUTOML_ARMS["automl_default"][0],
    "pruner": AUTOML_ARMS["automl_default"][1],
    "min_epochs": DEFAULT_MIN_EPOCHS,
}


def automl_settings(arm: dict[str, Any]) -> tuple[str, str, int]:
    """An automl arm's (sampler, pruner, first rung); a record without a first rung ran before
    it was recorded, when the rungs began at epoch 1 (read as the store reads such a study)."""
    return (
        str(arm.get("sampler")),
        str(arm.get("pruner")),
        SearchSettings(min_epochs=arm.get("min_epochs")).first_rung,
    )


def run_automl_arm(
    name: str, source: str, seed: int, max_epochs: int, seconds: float, space_path: Path
) -> dict[str, Any]:
    """automl's arm `name` of `AUTOML_ARMS`, stopped at `seconds`."""
    sampler, pruner, min_epochs = AUTOML_ARMS[name]
    return automl_arm(source, seed, max_epochs, seconds, sampler, pruner, space_path, min_epochs)


# Issue 22's goals: automl reaches the best Keras Tuner arm's final best within these fractions
# of Keras Tuner Hyperband's wall time and epochs.
TIME_GOAL, EPOCH_GOAL = 0.3, 0.5


def arms_in_every_run(runs: list[dict[str, Any]]) -> list[str]:
    """The arms every run holds, in table order."""
    return [n for n in ARMS if all(n in r["arms"] for r in runs)]


def seed_ratios(runs: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Per seed, automl's seconds and epochs to reach the best Keras Tuner arm's final best as
    fractions of Keras Tuner Hyperband's whole run (inf where it never got there)."""
    ratios = []
    for run in runs:
        ours, kt = run["arms"]["automl_default"], run["arms"]["keras_tuner_hyperband"]
        ratios.append(
            (
                (ours["reached_seconds"] or math.inf) / kt["seconds"],
                (ours["reached_epochs"] or math.inf) / kt["total_epochs"],
            )
        )
    return ratios


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Print the table; return automl's epochs and seconds to reach Keras Tuner's final best as
    fractions of Keras Tuner's whole run (medians over seeds; inf where it never got there)."""
    rows = []
    for name in arms_in_every_run(runs):
        arms = [r["arms"][name] for r in runs]
        epochs = [a["reached_epochs"] for a in arms if a["reached_epochs"] is not None]
        seconds = [a["reached_seconds"] for a in arms if a["reached_seconds"] is not None]
        tests = [a["test_accuracy"] for a in arms if a["test_accuracy"] is not None]
        rows.append(
            [
                name,
                f"{median([a['final_best'] for a in arms]):.4f}",
                f"{median([a['total_epochs'] for a in arms]):.0f}",
                f"{len(epochs)}/{len(arms)}",
                f"{median(epochs):.0f}" if epochs else "-",
                f"{median(seconds):.0f}" if seconds else "-",
                f"{median(tests):.4f}" if tests else "-",
            ]
        )
    print(
        table(
            rows,
            [
                "arm",
                "final best val acc",
                "epochs run",
                "reached KT best",
                "epochs to reach",
                "seconds to reach",
                "winner test acc",
            ],
        )
    )
    kt = [r["arms"]["keras_tuner_hyperband"] for r in runs]
    ours = [r["arms"]["automl_default"] for r in runs]
    per_seed = seed_ratios(runs)
    ratios = {
        "epoch_ratio": median([epochs for _, epochs in per_seed]),
        "seconds_ratio": median([seconds for seconds, _ in per_seed]),
    }
    print(
        f"automl reaches the best Keras Tuner arm's final best with {ratios['epoch_ratio']:.2f} x "
        f"Keras Tuner Hyperband's epochs and {ratios['seconds_ratio']:.2f} x its wall time "
        f"(goal <= {EPOCH_GOAL} and <= {TIME_GOAL}; medians over {len(runs)} seed(s))"
    )
    best_kt = [
        max(
            (r["arms"][n] for n in KERAS_TUNER_ARMS if n in r["arms"]),
            key=lambda a: a["final_best"],
        )
        for r in runs
    ]
    ratios["final_best"] = median([a["final_best"] for a in ours])
    ratios["best_keras_tuner_final_best"] = median([a["final_best"] for a in best_kt])
    ours_test = [a["test_accuracy"] for a in ours if a["test_accuracy"] is not None]
    kt_test = [a["test_accuracy"] for a in best_kt if a["test_accuracy"] is not None]
    ratios["test_accuracy"] = median(ours_test) if ours_test else math.nan
    ratios["best_keras_tuner_test_accuracy"] = median(kt_test) if kt_test else math.nan
    print(
        f"final best at equal wall time: automl {ratios['final_best']:.4f} vs the best Keras "
        f"Tuner arm {ratios['best_keras_tuner_final_best']:.4f} (goal >=); winners' test "
        f"accuracy {ratios['test_accuracy']:.4f} vs {ratios['best_keras_tuner_test_accuracy']:.4f} "
        "(goal >=; medians)"
    )
    recounted = []
    for automl, keras_tuner, run in zip(ours, kt, runs, strict=True):
        if "trials" in automl:
            when, count = reached(per_epoch_curve(automl["trials"]), run["target"])
            recounted.append(
                (
                    (count or math.inf) / keras_tuner["total_epochs"],
                    (when or math.inf) / keras_tuner["seconds"],
                )
            )
    if recounted:
        ratios["epoch_ratio_per_epoch"] = median([r[0] for r in recounted])
        ratios["seconds_ratio_per_epoch"] = median([r[1] for r in recounted])
        print(
            f"recounted epoch by epoch like Keras Tuner (the {len(recounted)} seed(s) with "
            f"per-trial records): {ratios['epoch_ratio_per_epoch']:.2f} x its epochs, "
            f"{ratios['seconds_ratio_per_epoch']:.2f} x its wall time"
        )
    return ratios


ARM_COLOURS = {
    "automl_default": "#2563eb",
    "automl_min_epochs_3": "#0891b2",
    "automl_hyperband": "#db2777",
    "automl_kt_bayesian": "#16a34a",
    "keras_tuner_hyperband": "#dc2626",
    "keras_tuner_bayesian": "#f97316",
    "optuna_tpe_hyperband": "#7c3aed",
    "random_no_pruning": "#6b7280",
}
ARM_LABELS = {
    "automl_default": "automl default (TPE, successive halving, no patience)",
    "automl_min_epochs_3": "automl with --min-epochs 3 (rungs at 3 and 9)",
    "automl_hyperband": "automl with --pruner hyperband (brackets from 1, 3 and 9)",
    "automl_kt_bayesian": "automl with Keras Tuner's Bayesian oracle",
    "keras_tuner_hyperband": "Keras Tuner Hyperband 27/3",
    "keras_tuner_bayesian": "Keras Tuner BayesianOptimization",
    "optuna_tpe_hyperband": "Optuna TPE + HyperbandPruner (hand-written loop)",
    "random_no_pruning": "random, no pruning",
}


def markdown(runs: list[dict[str, Any]], ratios: dict[str, float]) -> str:
    """`benchmarks/README.md`'s table of a result file (per-seed values in seed order, then
    their median) and one sentence against issue 22's goals, from `summarize`'s ratios."""

    def cells(values: list[float], digits: int = 4) -> list[str]:
        return [" / ".join(f"{v:.{digits}f}" for v in values), f"{median(values):.{digits}f}"]

    lines = [
        "| arm | final best val acc | median | epochs run | reached the best KT arm's final "
        "best at (s) | winner's test acc | median |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in arms_in_every_run(runs):
        arms = [r["arms"][name] for r in runs]
        reach = " / ".join(
            "never" if a["reached_seconds"] is None else f"{a['reached_seconds']:.0f}" for a in arms
        )
        row = [
            ARM_LABELS[name],
            *cells([a["final_best"] for a in arms]),
            " / ".join(str(a["total_epochs"]) for a in arms),
            reach,
            *cells([a["test_accuracy"] for a in arms]),
        ]
        lines.append("| " + " | ".join(row) + " |")
    per_seed = [
        "never" if math.isinf(seconds) else f"{seconds:.2f}× / {epochs:.2f}×"
        for seconds, epochs in seed_ratios(runs)
    ]

    def verdict(met: bool) -> str:
        return "**met**" if met else "**missed**"

    def times(ratio: float) -> str:
        # Three decimals where two would round onto a goal (0.304 is not ≤ 0.3).
        shown = f"{ratio:.2f}"
        return (
            f"{ratio:.3f}×"
            if float(shown) in (TIME_GOAL, EPOCH_GOAL) and ratio != float(shown)
            else shown + "×"
        )

    seconds, epochs = ratios["seconds_ratio"], ratios["epoch_ratio"]
    if math.isinf(seconds):
        reached_text = "not reached at the median (a seed that never reached it counts as infinite)"
    else:
        reached_text = f"{times(seconds)} and {times(epochs)}"
        if "seconds_ratio_per_epoch" in ratios:
            reached_text += (
                f" ({times(ratios['seconds_ratio_per_epoch'])} and "
                f"{times(ratios['epoch_ratio_per_epoch'])} recounted per epoch)"
            )
    final, kt_final = ratios["final_best"], ratios["best_keras_tuner_final_best"]
    test, kt_test = ratios["test_accuracy"], ratios["best_keras_tuner_test_accuracy"]
    lines += [
        "",
        f"Against the goals (medians of {len(runs)} seeds): final best at equal wall time "
        f"{final:.4f} against the best Keras Tuner arm's {kt_final:.4f} (goal ≥: "
        f"{verdict(final >= kt_final)}); time and epochs to reach it, against Keras Tuner "
        f"Hyperband's: {reached_text} (goal ≤ {TIME_GOAL}× and ≤ {EPOCH_GOAL}×: "
        f"{verdict(seconds <= TIME_GOAL)} and {verdict(epochs <= EPOCH_GOAL)}; per seed, time / "
        f"epochs: {'; '.join(per_seed)}); winners' "
        f"test accuracy {test:.4f} against {kt_test:.4f} (goal ≥: {verdict(test >= kt_test)}).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", choices=("digits", "mnist5k"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=27)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds start here")
    parser.add_argument(
        "--append", action="store_true", help="add these seeds' runs to the saved results"
    )
    parser.add_argument(
        "--replot", action="store_true", help="table and figure from the saved results"
    )
    parser.add_argument(
        "--add-arms",
        help="comma-separated arms to run on the saved seeds from --first-seed (--seeds of "
        "them), each with the wall time that seed's Keras Tuner Hyperband took; an arm already "
        "saved is replaced",
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print benchmarks/README.md's table of the saved results (runs nothing)",
    )
    parser.add_argument(
        "--kt-bayesian",
        action="store_true",
        help="add an arm searching with Keras Tuner's Bayesian oracle (--sampler kt-bayesian, "
        "default pruning); results go to their own file (_kt)",
    )
    parser.add_argument(
        "--space", default=str(FLAGSHIP), help="the space file (default spaces/cnn.py)"
    )
    parser.add_argument(
        "--arms",
        default=",".join(DEFAULT_ARMS),
        help="comma-separated arms besides Keras Tuner's Hyperband (default "
        f"{','.join(DEFAULT_ARMS)})",
    )
    args = parser.parse_args()
    result_name = f"b2_search_quality_{space_tag(args.space)}{args.data}" + (
        "_kt" if args.kt_bayesian else ""
    )
    saved_path = RESULTS / f"{result_name}.json"
    runs: list[dict[str, Any]] = []
    if args.add_arms:
        args.append = True
    if args.replot or args.append or args.markdown:
        saved = json.loads(saved_path.read_text())
        runs = saved["runs"]
        if args.markdown:
            print(markdown(runs, saved))
            return
        if args.replot:
            # The saved machine record stays: only the summary and the figure are redone.
            saved.update(summarize(runs))
            saved_path.write_text(json.dumps(saved, indent=1, default=str))
            write_figure(result_name, curves_figure(runs, args.data))
            return
        if saved["max_epochs"] != args.max_epochs:
            parser.error(f"{saved_path} was run with --max-epochs {saved['max_epochs']}")
        defaults = {automl_settings(DEFAULT_AUTOML_ARM)}
        used = {
            automl_settings(run["arms"]["automl_default"])
            for run in runs
            if "automl_default" in run["arms"]
        }
        if used != defaults:
            parser.error(
                f"{saved_path} holds automl runs with (sampler, pruner, first rung) "
                f"{sorted(map(str, used))}, not today's default {sorted(map(str, defaults))}; "
                "run without --append to start a new result file"
            )
    wanted = set(args.arms.split(",")) | {"keras_tuner_hyperband"}
    if args.kt_bayesian:
        wanted.add("automl_kt_bayesian")
    if unknown := wanted - set(ARMS):
        parser.error(f"--arms: unknown {sorted(unknown)}; choose from {', '.join(ARMS)}")
    space_path = Path(args.space).resolve()
    from automl.data import DataOptions, load_dataset
    from automl.tfruntime import import_tensorflow

    import_tensorflow()
    with tempfile.TemporaryDirectory() as scratch:
        source = data_source(args.data, Path(scratch))
        data = load_dataset(source, DataOptions(seed=0))
        if args.add_arms:
            added = args.add_arms.split(",")
            addable = [a for a in ARMS if a != "keras_tuner_hyperband"]
            if unknown := set(added) - set(addable):
                parser.error(f"--add-arms: unknown {sorted(unknown)}; choose from {addable}")
            chosen = range(args.first_seed, args.first_seed + args.seeds)
            for run in [r for r in runs if r["seed"] in chosen]:
                for name in added:
                    budget = run["arms"]["keras_tuner_hyperband"]["seconds"]
                    run["arms"][name] = run_arm(
                        name, data, source, run["seed"], args.max_epochs, budget, space_path
                    )
                    settle_run(run)
                    final = run["arms"][name]["final_best"]
                    print(f"seed {run['seed']}: {name} (added) best {final:.4f}", flush=True)
                    # Saved after each arm: a long addition keeps what it measured.
                    save(args, result_name, runs)
            return
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            with tempfile.TemporaryDirectory() as folder:
                kt = keras_tuner_arm(data, seed, args.max_epochs, Path(folder), space_path)
            budget = kt["seconds"]
            print(
                f"seed {seed}: Keras Tuner Hyperband best {kt['curve'][-1][2]:.4f} after "
                f"{kt['curve'][-1][1]} epochs, {budget:.0f} s",
                flush=True,
            )
            current: dict[str, Any] = {"seed": seed, "arms": {"keras_tuner_hyperband": kt}}
            settle_run(current)
            runs.append(current)
            for name in arm_order(wanted - {"keras_tuner_hyperband"}):
                current["arms"][name] = run_arm(
                    name, data, source, seed, args.max_epochs, budget, space_path
                )
                settle_run(current)
                final = current["arms"][name]["final_best"]
                print(f"seed {seed}: {name} best {final:.4f}", flush=True)
                # Saved after each arm: a seed takes hours, and a run cut short keeps what it
                # measured; `--add-arms` runs the rest on the same wall time.
                save(args, result_name, runs)
    save(args, result_name, runs)


def arm_order(names: set[str]) -> list[str]:
    """The order a seed runs its arms in: automl's default and the other Keras Tuner arm
    first (together they decide the seed's figures against the goals), then table order."""
    first = ("automl_default", "keras_tuner_bayesian")
    return sorted(names, key=lambda a: (first.index(a) if a in first else 2, ARMS.index(a)))


def run_arm(
    name: str,
    data: Any,
    source: str,
    seed: int,
    max_epochs: int,
    budget: float,
    space_path: Path,
) -> dict[str, Any]:
    """Arm `name` (any but Keras Tuner's Hyperband, which sets `budget`) on one seed."""
    if name == "keras_tuner_bayesian":
        with tempfile.TemporaryDirectory() as folder:
            return keras_tuner_bayesian_arm(
                data, seed, max_epochs, budget, Path(folder), space_path
            )
    if name == "optuna_tpe_hyperband":
        return optuna_arm(data, seed, max_epochs, budget, space_path)
    return run_automl_arm(name, source, seed, max_epochs, budget, space_path)


def settle_run(run: dict[str, Any]) -> None:
    """The run's target (the best Keras Tuner arm's final best, among the arms it holds so
    far) and every arm's figures against it."""
    run["target"] = max(
        run["arms"][name]["curve"][-1][2]
        for name in KERAS_TUNER_ARMS
        if run["arms"].get(name, {}).get("curve")
    )
    settle(run["arms"], run["target"])


def settle(arms: dict[str, dict[str, Any]], target: float) -> None:
    """Each arm's time and epochs to reach the target, its final best and its epochs."""
    for arm in arms.values():
        seconds, epochs = reached(arm["curve"], target)
        arm.update(
            reached_seconds=seconds,
            reached_epochs=epochs,
            final_best=arm["curve"][-1][2] if arm["curve"] else None,
            total_epochs=arm["curve"][-1][1] if arm["curve"] else 0,
        )


def save(args: argparse.Namespace, result_name: str, runs: list[dict[str, Any]]) -> None:
    # A seed still running its arms has no summary yet; every seed is kept.
    ratios = summarize([r for r in runs if "automl_default" in r["arms"]])
    figure = curves_figure(runs, args.data)
    write_result(
        result_name,
        {
            "data": args.data,
            "seeds": [run["seed"] for run in runs],
            "max_epochs": args.max_epochs,
            "runs": runs,
            **ratios,
        },
        figure,
    )


if __name__ == "__main__":
    main()
