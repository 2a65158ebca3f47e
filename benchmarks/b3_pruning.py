"""B3 — pruning savings: TPE with the default pruner (Hyperband) vs TPE without pruning, same
seed, same number of trials, same space (`spaces/cnn.py`) and epoch budget.

Reports the epochs trained by each arm, the share saved by pruning, and the best validation
accuracy of each (target: ≥ 70 % of epochs saved, best accuracy within 0.5 pp).

    python benchmarks/b3_pruning.py [--trials 24] [--epochs 9] [--seeds 1] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import search_cnn, table, write_result


def run(pruner: str, seed: int, trials: int, epochs: int, workers: int) -> dict[str, Any]:
    summary, seconds = search_cnn(
        trials=trials,
        epochs=epochs,
        workers=workers,
        pruner=pruner,
        seed=seed,
        patience=None,
        study=f"{pruner}{seed}",
    )
    record = summary.record
    best = record.best()
    return {
        "pruner": pruner,
        "seed": seed,
        "seconds": seconds,
        "epochs": sum(t.epochs_run for t in record.trials),
        "pruned": sum(1 for t in record.trials if t.state.value == "pruned"),
        "best": best.value if best else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    results = []
    for seed in range(args.seeds):
        for pruner in ("hyperband", "none") if seed % 2 == 0 else ("none", "hyperband"):
            result = run(pruner, seed, args.trials, args.epochs, args.workers)
            results.append(result)
            print(
                f"seed {seed} pruner {pruner}: {result['epochs']} epochs, "
                f"{result['pruned']} pruned, best {result['best']:.4f}, "
                f"{result['seconds']:.0f} s",
                flush=True,
            )
    by = {p: [r for r in results if r["pruner"] == p] for p in ("hyperband", "none")}
    epochs = {p: sum(r["epochs"] for r in rs) for p, rs in by.items()}
    saved = 1 - epochs["hyperband"] / epochs["none"]
    best = {p: max(r["best"] for r in rs) for p, rs in by.items()}
    seconds = {p: sum(r["seconds"] for r in rs) for p, rs in by.items()}
    rows = [[p, epochs[p], f"{best[p]:.4f}", f"{seconds[p]:.0f}"] for p in by]
    print(table(rows, ["pruner", "epochs trained", "best val_accuracy", "wall s"]))
    print(
        f"epochs saved by pruning: {saved:.0%} (target >= 70 %); best accuracy difference "
        f"{(best['hyperband'] - best['none']) * 100:+.2f} pp (target within 0.5 pp)"
    )
    write_result(
        "b3_pruning",
        {
            "trials": args.trials,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "results": results,
            "saved": saved,
            "best": best,
        },
    )


if __name__ == "__main__":
    main()
