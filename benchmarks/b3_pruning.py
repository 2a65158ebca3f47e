"""B3 — pruning savings: TPE with each pruner (the default first) vs TPE without pruning, same
seed, same number of trials, same space (`spaces/cnn.py`) and epoch budget.

Reports the epochs trained by each arm, the share saved by pruning, and the best validation
accuracy of each (target: ≥ 70 % of epochs saved, best accuracy within 0.5 pp).

    python benchmarks/b3_pruning.py [--trials 24] [--epochs 9] [--seeds 1] [--workers 2]
        [--pruners sha,hyperband] [--min-epochs E] [--baseline results/b3_pruning_100x27.json]
        [--name NAME]

Results go to `results/b3_pruning_<trials>x<epochs>.json` (or `--name`), so runs at other
trial counts keep each other. `--baseline` takes the no-pruning arm (which no pruner setting
changes) from a saved result of the same trials, epochs and seeds instead of running it again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from automl.search import SearchConfig
from benchmarks.common import median, search_cnn, table, write_result


def run(
    pruner: str, seed: int, trials: int, epochs: int, workers: int, min_epochs: int | None = None
) -> dict[str, Any]:
    def with_test_accuracy(summary: Any) -> tuple[Any, float | None]:
        # The winner's best-epoch checkpoint scored on the test split, which no arm selects on:
        # a gap in best validation accuracy that is selection noise does not show up here.
        from automl.deploy import retrain_study

        results = retrain_study(summary.study, storage=summary.storage_url, from_checkpoint=True)
        return summary, results[0].metrics["accuracy"] if results else None

    (summary, test_accuracy), seconds = search_cnn(
        with_test_accuracy,
        trials=trials,
        epochs=epochs,
        workers=workers,
        pruner=pruner,
        min_epochs=min_epochs,
        seed=seed,
        patience=None,
        study=f"{pruner}{seed}",
    )
    record = summary.record
    best = record.best()
    return {
        "pruner": pruner,
        "min_epochs": record.settings.min_epochs,  # the first rung it searched with
        "seed": seed,
        "seconds": seconds,
        "epochs": sum(t.epochs_run for t in record.trials),
        "pruned": sum(1 for t in record.trials if t.state.value == "pruned"),
        "best": best.value if best else None,
        "test_accuracy": test_accuracy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--pruners",
        default=SearchConfig.pruner,
        help="comma-separated pruners to compare with no pruning (default: the default pruner)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a saved B3 result whose no-pruning runs are used instead of running them again",
    )
    parser.add_argument(
        "--min-epochs", type=int, help="the pruners' first rung (default: automl's default)"
    )
    parser.add_argument("--name", help="result file name (default b3_pruning_<trials>x<epochs>)")
    args = parser.parse_args()
    pruners = [p for p in args.pruners.split(",") if p and p != "none"]
    arms = [*pruners, "none"]
    results = []
    if args.baseline is not None:
        saved = json.loads(args.baseline.read_text())
        if (saved["trials"], saved["epochs"], saved["seeds"]) != (
            args.trials,
            args.epochs,
            args.seeds,
        ):
            parser.error(f"{args.baseline} was run with other --trials, --epochs or --seeds")
        results += [r for r in saved["results"] if r["pruner"] == "none"]
    for seed in range(args.seeds):
        # Alternate the order between seeds, so neither side always runs on a cooler machine.
        for pruner in arms if seed % 2 == 0 else arms[::-1]:
            if pruner == "none" and args.baseline is not None:
                continue
            result = run(pruner, seed, args.trials, args.epochs, args.workers, args.min_epochs)
            results.append(result)
            print(
                f"seed {seed} pruner {pruner}: {result['epochs']} epochs, "
                f"{result['pruned']} pruned, best {result['best']:.4f} "
                f"(its test accuracy {result['test_accuracy']:.4f}), "
                f"{result['seconds']:.0f} s",
                flush=True,
            )
    by = {p: [r for r in results if r["pruner"] == p] for p in arms}
    epochs = {p: sum(r["epochs"] for r in rs) for p, rs in by.items()}
    saved = {p: 1 - epochs[p] / epochs["none"] for p in pruners}
    best = {p: max(r["best"] for r in rs) for p, rs in by.items()}
    seconds = {p: sum(r["seconds"] for r in rs) for p, rs in by.items()}
    # The accuracy criterion pairs each seed with its own no-pruning run: median of the
    # per-seed differences of the best validation accuracy, in percentage points.
    none_by_seed = {r["seed"]: r["best"] for r in by["none"]}
    difference_pp = {
        p: median([(r["best"] - none_by_seed[r["seed"]]) * 100 for r in by[p]]) for p in arms
    }
    none_test = {r["seed"]: r["test_accuracy"] for r in by["none"]}
    test_difference_pp = {
        p: median([(r["test_accuracy"] - none_test[r["seed"]]) * 100 for r in by[p]]) for p in arms
    }
    rows = [
        [
            p,
            epochs[p],
            f"{saved[p]:.0%}" if p in saved else "-",
            f"{best[p]:.4f}",
            f"{difference_pp[p]:+.2f}",
            f"{test_difference_pp[p]:+.2f}",
            f"{seconds[p]:.0f}",
        ]
        for p in arms
    ]
    print(
        table(
            rows,
            [
                "pruner",
                "epochs trained",
                "saved",
                "best val_accuracy (all seeds)",
                "vs none, median of seeds, pp",
                "winner's test acc vs none, pp",
                "wall s",
            ],
        )
    )
    print("targets: >= 70 % of epochs saved, best accuracy within 0.5 pp of no pruning")
    write_result(
        args.name or f"b3_pruning_{args.trials}x{args.epochs}",
        {
            "baseline": str(args.baseline) if args.baseline else None,
            "trials": args.trials,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "default_pruner": SearchConfig.pruner,
            "results": results,
            "saved": saved,
            "best": best,
            "difference_pp": difference_pp,
            "test_difference_pp": test_difference_pp,
        },
    )


if __name__ == "__main__":
    main()
