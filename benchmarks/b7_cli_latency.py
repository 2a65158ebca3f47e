"""B7 — CLI latency: `automl --help`, `automl studies` and `automl report` on a 1,000-trial study.

The study is written straight into a SQLite store with Optuna (complete, pruned and failed
trials with per-epoch values and automl's attributes), then each command runs as a user runs
it, in a fresh process, several times; medians are reported. A second pass checks in-process
that none of the commands imports TensorFlow.

    python benchmarks/b7_cli_latency.py [--trials 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import REPO, median, table, write_result

TARGETS = {"--help": 0.3, "studies": 1.0, "report": 5.0}


def make_study(url: str, trials: int, seed: int = 0) -> None:
    """A study shaped like an automl search of spaces/cnn.py."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from automl.storage import attributes as keys

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(seed)
    study = optuna.create_study(study_name="bench", storage=url, direction="maximize")
    study.set_user_attr(keys.SPACE, keys.SpaceProvenance("spaces/cnn.py", "0" * 64, "").to_json())
    study.set_user_attr(
        keys.DATA,
        keys.DataSummary(
            source="digits",
            sha256="1" * 64,
            input_shape=(8, 8, 1),
            num_classes=10,
            class_names=tuple(str(i) for i in range(10)),
            sizes={"train": 1079, "val": 359, "test": 359},
        ).to_json(),
    )
    study.set_user_attr(keys.OBJECTIVE, keys.StoredObjective("val_accuracy", "maximize").to_json())
    distributions = {
        "backbone": CategoricalDistribution(["conv", "resnet"]),
        "depth": IntDistribution(1, 4),
        "filters": CategoricalDistribution([16, 32, 64]),
        "l2": FloatDistribution(1e-6, 1e-2, log=True),
        "dropout": FloatDistribution(0.0, 0.5, step=0.1),
        "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
        "optimizer": CategoricalDistribution(["adam", "adamw", "sgd", "rmsprop"]),
        "batch_size": CategoricalDistribution([16, 32, 64]),
    }
    made = []
    start = time.time() - trials * 10
    for number in range(trials):
        params = {
            "backbone": rng.choice(["conv", "resnet"]),
            "depth": rng.randint(1, 4),
            "filters": rng.choice([16, 32, 64]),
            "l2": 10 ** rng.uniform(-6, -2),
            "dropout": round(rng.choice([0.0, 0.1, 0.2, 0.3, 0.4, 0.5]), 1),
            "learning_rate": 10 ** rng.uniform(-4, -1),
            "optimizer": rng.choice(["adam", "adamw", "sgd", "rmsprop"]),
            "batch_size": rng.choice([16, 32, 64]),
        }
        state = rng.choice([TrialState.COMPLETE] * 3 + [TrialState.PRUNED] * 6 + [TrialState.FAIL])
        epochs = 9 if state == TrialState.COMPLETE else rng.choice([1, 3])
        quality = rng.random()
        curve = {e: min(0.99, quality * (0.5 + 0.5 * e / 9)) for e in range(1, epochs + 1)}
        made.append(
            create_trial(
                state=state,
                params=params,
                distributions=distributions,
                value=max(curve.values()) if state != TrialState.FAIL else None,
                intermediate_values=curve if state != TrialState.FAIL else {},
                user_attrs={
                    keys.LAUNCH: keys.TrialLaunch(
                        f"cpu{number % 2}", keys.Owner("bench", 1)
                    ).to_json(),
                    keys.RESULT: keys.TrialOutcome(
                        epochs_run=epochs,
                        best_epoch=epochs,
                        params_count=20000 + number,
                        failure="out of memory" if state == TrialState.FAIL else None,
                    ).to_json(),
                },
            )
        )
        made[-1].datetime_start = None
    for index, trial in enumerate(made):
        from datetime import datetime

        trial.datetime_start = datetime.fromtimestamp(start + 10 * index)
        trial.datetime_complete = datetime.fromtimestamp(start + 10 * index + 8)
    study.add_trials(made)


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed: {result.stderr}")
    return elapsed


def imports_tensorflow(args: list[str], cwd: Path, env: dict[str, str]) -> bool:
    code = (
        "import sys\nfrom automl.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "print('TF', 'tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True
    ).stdout
    return "TF True" in out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    automl = str(Path(sys.executable).with_name("automl"))
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        (cwd / "runs").mkdir()
        url = f"sqlite:///{cwd / 'runs' / 'automl.db'}"
        make_study(url, args.trials)
        env = {**os.environ, "AUTOML_STORAGE": url, "PYTHONPATH": str(REPO)}
        commands = {
            "--help": [automl, "--help"],
            "studies": [automl, "studies"],
            "report": [automl, "report", "bench", "-o", str(cwd / "report.html")],
        }
        results = {}
        for _ in range(args.repeats):
            for name, command in commands.items():
                results.setdefault(name, []).append(timed(command, cwd, env))
        size = (cwd / "report.html").stat().st_size
        heavy = {
            name: imports_tensorflow(command[1:], cwd, env) for name, command in commands.items()
        }
    rows = [
        [
            name,
            f"{median(times):.3f}",
            f"{TARGETS[name]:.1f}",
            "yes" if median(times) <= TARGETS[name] else "NO",
            "yes" if heavy[name] else "no",
        ]
        for name, times in results.items()
    ]
    print(table(rows, ["command", "median s", "target s", "met", "imports TensorFlow"]))
    print(f"report size for {args.trials} trials: {size / 1e6:.2f} MB")
    write_result(
        "b7_cli_latency" if args.trials == 1000 else f"b7_cli_latency_{args.trials}_trials",
        {
            "trials": args.trials,
            "repeats": args.repeats,
            "seconds": results,
            "report_bytes": size,
            "imports_tensorflow": heavy,
            "targets": TARGETS,
        },
    )


if __name__ == "__main__":
    main()
