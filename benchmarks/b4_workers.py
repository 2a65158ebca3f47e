"""B4 — parallel scaling: 1 CPU worker vs 2 (threads split between them), same budget.

Both runs search `spaces/cnn.py` on digits with the random sampler (same seed, so the same
configurations), no pruning and a fixed epoch count, and report trials per hour and worker
utilisation. On a GPU machine, `b4_gpu.py` compares K trials per GPU (and 1 GPU with N).

    python benchmarks/b4_workers.py [--trials 12] [--epochs 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import search_cnn, table, write_result


def run(workers: int, trials: int, epochs: int) -> dict[str, Any]:
    summary, seconds = search_cnn(
        trials=trials,
        epochs=epochs,
        workers=workers,
        sampler="random",
        pruner="none",
        patience=None,
        seed=0,
        study=f"w{workers}",
    )
    return {
        "workers": workers,
        "seconds": seconds,
        "trials_per_hour": trials / seconds * 3600,
        "utilisation": summary.utilisation,
        "best": summary.record.best().value if summary.record.best() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    results = []
    for workers in (1, 2):
        result = run(workers, args.trials, args.epochs)
        results.append(result)
        print(
            f"{workers} worker(s): {result['seconds']:.0f} s, "
            f"{result['trials_per_hour']:.0f} trials/hour, utilisation "
            f"{', '.join(f'{k} {v:.0%}' for k, v in result['utilisation'].items())}",
            flush=True,
        )
    speedup = results[1]["trials_per_hour"] / results[0]["trials_per_hour"]
    rows = [
        [
            r["workers"],
            f"{r['seconds']:.0f}",
            f"{r['trials_per_hour']:.0f}",
            ", ".join(f"{v:.0%}" for v in r["utilisation"].values()),
        ]
        for r in results
    ]
    print(table(rows, ["CPU workers", "wall s", "trials/hour", "utilisation"]))
    print(f"2 workers = {speedup:.2f} × the trials per hour of 1 (target >= 1.3)")
    write_result(
        "b4_workers",
        {"trials": args.trials, "epochs": args.epochs, "results": results, "speedup": speedup},
    )


if __name__ == "__main__":
    main()
