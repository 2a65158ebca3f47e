"""B2, "understand why": how TPE's start-up trials and constant liar behave with 2 workers.

automl's default search (TPE + successive halving, 2 workers) is run on the same space, data
and seeds with three TPE settings, all else equal:

- `default`: what `automl search` uses: `n_startup_trials=max(10, 2 × workers)`, multivariate,
  grouped, `constant_liar=True`;
- `no_liar`: the same without the constant liar;
- `startup_4`: 4 random start-up trials (2 × workers) instead of 10.

For each run: the best validation accuracy, the trial that found it, the epochs trained, the
wall time, and how far apart the two trials that ran side by side were. Each trial is paired
with the other worker's trial that was running when it started; their distance is the mean
over parameters of |a − b| on the parameter's scale mapped to [0, 1] (log scale where the
space says so; a choice counts 0 when equal, 1 when not). The liar exists to keep two
workers from proposing the same point while neither has a result.

    python benchmarks/b2_tpe_parallel.py --space benchmarks/spaces/small_cnn.py --seeds 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import search_cnn, space_tag, table, write_result  # noqa: E402

ARMS: dict[str, dict[str, Any]] = {
    "default": {"startup": None, "liar": True},
    "no_liar": {"startup": None, "liar": False},
    "startup_4": {"startup": 4, "liar": True},
}


def tpe_with(startup: int | None, liar: bool) -> Any:
    """`engines.make_sampler`, with TPE's start-up trials and constant liar set."""
    from automl.search import engines

    original = engines.make_sampler

    def make_sampler(name: str, **kwargs: Any) -> Any:
        if name != "tpe":
            return original(name, **kwargs)
        return engines.tpe_sampler(
            kwargs["seed"], kwargs["slots"], n_startup_trials=startup, constant_liar=liar
        )

    return make_sampler


def distance(a: dict[str, Any], b: dict[str, Any], scales: dict[str, Any]) -> float:
    """Mean per-parameter distance on [0, 1] between two configurations."""
    parts = []
    for name, spec in scales.items():
        if name not in a or name not in b:
            continue
        if spec.low is None or spec.high is None or isinstance(a[name], (str, bool)):
            parts.append(0.0 if a[name] == b[name] else 1.0)
            continue
        low, high, x, y = float(spec.low), float(spec.high), float(a[name]), float(b[name])
        if spec.log:
            low, high, x, y = map(math.log, (low, high, x, y))
        parts.append(abs(x - y) / (high - low) if high > low else 0.0)
    return sum(parts) / len(parts) if parts else 0.0


def side_by_side(record: Any, scales: dict[str, Any]) -> list[tuple[int, float]]:
    """For each trial: the distance to the trial another worker was running when it started."""
    trials = [t for t in record.trials if t.started is not None]
    pairs = []
    for trial in trials:
        others = [
            o
            for o in trials
            if o.number < trial.number
            and o.slot != trial.slot
            and (o.completed is None or o.completed > trial.started)
        ]
        if others:
            other = max(others, key=lambda o: o.number)
            pairs.append((trial.number, distance(trial.params, other.params, scales)))
    return pairs


def run_arm(space: Path, data: str, seed: int, trials: int, arm: str) -> dict[str, Any]:
    from automl.search import engines
    from automl.spaces.hyperparameters import ParamSpec

    settings = ARMS[arm]
    original = engines.make_sampler
    engines.make_sampler = tpe_with(settings["startup"], settings["liar"])
    try:

        def inspect(summary: Any) -> dict[str, Any]:
            record = summary.record
            scales = {
                spec.name: spec
                for spec in (ParamSpec.from_dict(p) for p in record.space.parameters)
            }
            finished = [t for t in record.trials if t.value is not None]
            complete = [t for t in finished if t.state.value == "complete"]
            best = max(complete or finished, key=lambda t: t.value)
            startup = settings["startup"] or engines.startup_trials(2)
            pairs = side_by_side(record, scales)
            after = [d for n, d in pairs if n >= startup]
            return {
                "best": best.value,
                "best_trial": best.number,
                "epochs": sum(t.epochs_run for t in record.trials),
                "pruned": sum(t.state.value == "pruned" for t in record.trials),
                "pair_distance_after_startup": statistics.median(after) if after else None,
                "close_pairs_after_startup": sum(d < 0.1 for d in after),
                "pairs_after_startup": len(after),
                "trials": [
                    {
                        "number": t.number,
                        "state": t.state.value,
                        "value": t.value,
                        "epochs": t.epochs_run,
                        "params": dict(t.params),
                    }
                    for t in record.trials
                ],
            }

        found, seconds = search_cnn(
            inspect,
            space=space,
            data=data,
            trials=trials,
            workers=2,
            seed=seed,
        )
    finally:
        engines.make_sampler = original
    return found | {"seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(REPO / "benchmarks" / "spaces" / "small_cnn.py"))
    parser.add_argument("--data", default="digits")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--arms", default=",".join(ARMS))
    args = parser.parse_args()
    space = Path(args.space).resolve()
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in args.arms.split(",")}
    for seed in range(args.seeds):
        for arm in runs:
            result = run_arm(space, args.data, seed, args.trials, arm)
            runs[arm].append(result | {"seed": seed})
            print(
                f"seed {seed} {arm}: best {result['best']:.4f} (trial {result['best_trial']}), "
                f"{result['epochs']} epochs, {result['seconds']:.0f} s, side-by-side distance "
                f"{result['pair_distance_after_startup']}, close pairs "
                f"{result['close_pairs_after_startup']}/{result['pairs_after_startup']}",
                flush=True,
            )
    rows = []
    for arm, results in runs.items():

        def cell(key: str, fmt: str, results: list[dict[str, Any]] = results) -> str:
            return " / ".join(format(r[key], fmt) if r[key] is not None else "-" for r in results)

        rows.append(
            (
                arm,
                cell("best", ".4f"),
                cell("best_trial", "d"),
                cell("epochs", "d"),
                cell("seconds", ".0f"),
                cell("pair_distance_after_startup", ".2f"),
                " / ".join(
                    f"{r['close_pairs_after_startup']}/{r['pairs_after_startup']}" for r in results
                ),
            )
        )
    print(
        table(
            rows,
            [
                "arm",
                "best val acc",
                "found at trial",
                "epochs",
                "seconds",
                "side-by-side distance",
                "close pairs (< 0.1)",
            ],
        )
    )
    write_result(
        f"b2_tpe_parallel_{space_tag(args.space)}{args.data}",
        {"settings": vars(args), "arms": ARMS, "runs": runs},
    )


if __name__ == "__main__":
    main()
