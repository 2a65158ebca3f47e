"""B2 — search quality for the budget: automl's default (TPE + Hyperband pruning) vs Keras
Tuner's `Hyperband` run directly (max_epochs 27, factor 3) vs random search without pruning.

All three search the same space (`spaces/cnn.py`'s `build`, which runs unchanged under Keras
Tuner) on the same data splits. Keras Tuner runs first and sets the budget: the other two get
the same wall time. For each run the best-so-far validation accuracy is recorded against
cumulative epochs and wall time; the report gives, per seed, the epochs and seconds automl
needed to reach Keras Tuner's final best, and each winner's test accuracy.

    python benchmarks/b2_search_quality.py [--data digits|mnist5k] [--seeds 5] [--max-epochs 27]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import REPO, median, mnist_5k_npz, table, write_result

Curve = list[tuple[float, int, float]]  # (seconds, cumulative epochs, best so far)


def keras_tuner_arm(data: Any, seed: int, max_epochs: int, folder: Path) -> dict[str, Any]:
    import keras
    import keras_tuner
    import numpy as np

    from automl.data.pipeline import make_pipeline
    from automl.spaces import SpaceInfo, load_space

    space = load_space(REPO / "spaces" / "cnn.py")
    info = SpaceInfo(
        data.input_shape, data.num_classes, data.class_names, len(data.train), max_epochs
    )
    curve: Curve = []
    started = time.perf_counter()
    state = {"epochs": 0, "best": -math.inf}

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            state["epochs"] += 1
            state["best"] = max(state["best"], float((logs or {}).get("val_accuracy", -1)))
            curve.append((time.perf_counter() - started, state["epochs"], state["best"]))

    class HyperModel(keras_tuner.HyperModel):
        def build(self, hp: Any) -> Any:
            return space.build(hp, info)

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            batch = hp.get("batch_size") if "batch_size" in hp else 32
            train = make_pipeline(data.train, batch_size=batch, training=True, seed=seed)
            val = make_pipeline(data.val, batch_size=256, training=False)
            kwargs.pop("validation_data", None)
            return model.fit(train, validation_data=val, **kwargs)

    tuner = keras_tuner.Hyperband(
        HyperModel(),
        objective="val_accuracy",
        max_epochs=max_epochs,
        factor=3,
        seed=seed,
        directory=str(folder),
        project_name="kt",
        overwrite=True,
    )
    tuner.search(epochs=max_epochs, callbacks=[Record()], verbose=0)
    best_model = tuner.get_best_models(1)[0]
    test = make_pipeline(data.test, batch_size=256, training=False)
    probabilities = best_model.predict(test, verbose=0)
    accuracy = float(np.mean(np.argmax(probabilities, 1) == data.test.y))
    keras.backend.clear_session()
    return {"curve": curve, "seconds": time.perf_counter() - started, "test_accuracy": accuracy}


def automl_arm(
    data_source: str,
    seed: int,
    max_epochs: int,
    seconds: float,
    sampler: str,
    pruner: str,
    folder: Path,
) -> dict[str, Any]:
    from automl.data import DataOptions
    from automl.deploy import retrain_study
    from automl.search.scheduler import SearchConfig, run_search

    home = os.getcwd()
    os.chdir(folder)
    try:
        config = SearchConfig(
            space=str(REPO / "spaces" / "cnn.py"),
            trials=10_000,
            data=data_source,
            data_options=DataOptions(seed=0),
            epochs=max_epochs,
            sampler=sampler,
            pruner=pruner,
            seed=seed,
            timeout=seconds,
            patience=None,
            study="b2",
            keep_checkpoints=1,
        )
        started = time.perf_counter()
        summary = run_search(config, gpu_probe=lambda: [])
        elapsed = time.perf_counter() - started
        results = retrain_study("b2", storage=summary.storage_url, from_checkpoint=True)
    finally:
        os.chdir(home)
    record = summary.record
    origin = min(t.started for t in record.trials if t.started)
    curve: Curve = []
    epochs = 0
    best = -math.inf
    for trial in sorted((t for t in record.trials if t.completed), key=lambda t: t.completed):
        epochs += trial.epochs_run
        if trial.value is not None and trial.state.value == "complete":
            best = max(best, trial.value)
        elif trial.intermediate:
            best = max(best, max(trial.intermediate.values()))
        curve.append(((trial.completed - origin).total_seconds(), epochs, best))
    return {
        "curve": curve,
        "seconds": elapsed,
        "test_accuracy": results[0].metrics["accuracy"] if results else None,
    }


def reached(curve: Curve, target: float) -> tuple[float | None, int | None]:
    for seconds, epochs, best in curve:
        if best >= target - 1e-9:
            return seconds, epochs
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", choices=("digits", "mnist5k"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=27)
    args = parser.parse_args()
    from automl.data import DataOptions, load_dataset
    from automl.tfruntime import import_tensorflow

    import_tensorflow()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        source = "digits" if args.data == "digits" else str(mnist_5k_npz(Path(scratch)))
        data = load_dataset(source, DataOptions(seed=0))
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as folder:
                kt = keras_tuner_arm(data, seed, args.max_epochs, Path(folder))
            print(
                f"seed {seed}: Keras Tuner Hyperband best {kt['curve'][-1][2]:.4f} after "
                f"{kt['curve'][-1][1]} epochs, {kt['seconds']:.0f} s",
                flush=True,
            )
            arms = {"keras_tuner_hyperband": kt}
            for name, sampler, pruner in (
                ("automl_default", "tpe", "hyperband"),
                ("random_no_pruning", "random", "none"),
            ):
                with tempfile.TemporaryDirectory() as folder:
                    arms[name] = automl_arm(
                        source, seed, args.max_epochs, kt["seconds"], sampler, pruner, Path(folder)
                    )
                final = arms[name]["curve"][-1] if arms[name]["curve"] else (0, 0, float("nan"))
                print(
                    f"seed {seed}: {name} best {final[2]:.4f} after {final[1]} epochs", flush=True
                )
            target = kt["curve"][-1][2]
            for arm in arms.values():
                seconds, epochs = reached(arm["curve"], target)
                arm.update(
                    reached_seconds=seconds,
                    reached_epochs=epochs,
                    final_best=arm["curve"][-1][2] if arm["curve"] else None,
                    total_epochs=arm["curve"][-1][1] if arm["curve"] else 0,
                )
            runs.append({"seed": seed, "target": target, "arms": arms})
    rows = []
    names = ["automl_default", "keras_tuner_hyperband", "random_no_pruning"]
    for name in names:
        arms = [r["arms"][name] for r in runs]
        epochs = [a["reached_epochs"] for a in arms if a["reached_epochs"] is not None]
        seconds = [a["reached_seconds"] for a in arms if a["reached_seconds"] is not None]
        rows.append(
            [
                name,
                f"{median([a['final_best'] for a in arms]):.4f}",
                f"{len(epochs)}/{len(arms)}",
                f"{median(epochs):.0f}" if epochs else "-",
                f"{median(seconds):.0f}" if seconds else "-",
                f"{median([a['test_accuracy'] for a in arms if a['test_accuracy']]):.4f}",
            ]
        )
    print(
        table(
            rows,
            [
                "arm",
                "final best val acc",
                "reached KT best",
                "epochs to reach (median)",
                "seconds to reach (median)",
                "winner test acc",
            ],
        )
    )
    kt_epochs = median([r["arms"]["keras_tuner_hyperband"]["total_epochs"] for r in runs])
    kt_seconds = median([r["arms"]["keras_tuner_hyperband"]["reached_seconds"] or 0 for r in runs])
    ours = [r["arms"]["automl_default"] for r in runs]
    epoch_ratio = median([(a["reached_epochs"] or math.inf) for a in ours]) / kt_epochs
    second_ratio = median([(a["reached_seconds"] or math.inf) for a in ours]) / max(
        kt_seconds, 1e-9
    )
    print(
        f"automl epochs to reach KT's best = {epoch_ratio:.2f} × KT's epochs; seconds = "
        f"{second_ratio:.2f} × KT's (target <= 0.5 each, medians over seeds)"
    )
    import plotly.graph_objects as go

    figure = go.Figure()
    colours = {
        "automl_default": "#2563eb",
        "keras_tuner_hyperband": "#dc2626",
        "random_no_pruning": "#6b7280",
    }
    for run in runs:
        for name, arm in run["arms"].items():
            figure.add_trace(
                go.Scatter(
                    x=[c[1] for c in arm["curve"]],
                    y=[c[2] for c in arm["curve"]],
                    mode="lines",
                    name=f"{name} seed {run['seed']}",
                    line={"color": colours[name]},
                )
            )
    figure.update_layout(
        title=f"B2 ({args.data}): best validation accuracy vs cumulative epochs",
        xaxis_title="cumulative epochs",
        yaxis_title="best val_accuracy",
    )
    write_result(
        f"b2_search_quality_{args.data}",
        {
            "data": args.data,
            "seeds": args.seeds,
            "max_epochs": args.max_epochs,
            "runs": runs,
            "epoch_ratio": epoch_ratio,
            "seconds_ratio": second_ratio,
        },
        figure,
    )


if __name__ == "__main__":
    main()
