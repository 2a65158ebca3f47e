"""Issue 22, "understand why": where should successive halving's first rung be?

Replays the recorded curves of `b2_pruning_analysis` (every trial trained all 27 epochs, random
configurations) through Optuna's own pruners, without training anything: a stream of trials
drawn at random from one seed's pool (with replacement), each reporting its recorded curve epoch
by epoch to the pruner, one trial at a time, until a trial reaches the pool's best validation
accuracy. It prints the epochs that took (median over the streams, and how many streams had
not got there within `--budget` epochs) for successive halving with its first
rung at epoch 1, 2 and 3, Hyperband from epoch 1, and no pruning; and, as B3 counts them, the
fraction of epochs a stream of `--trials` trials did not train against 27 each (median of
`--streams` / 6 streams per seed).

A pool's trials have fixed curves, so a configuration that a rung prunes is pruned again each
time it is drawn: the replay shows what a rung does to slow starters, not the noise of training.

    python benchmarks/b2_first_rung.py [--streams 60] [--budget 1500] [--trials 100] [FILE ...]

Default files: `results/b2_pruning_analysis_{digits,small_cnn_digits,small_cnn_mnist5k}.json`.
Nothing is written; the README's table was printed by the default command.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from automl.search import engines
from benchmarks.b2_pruning_analysis import Curve, winner_key
from benchmarks.common import RESULTS, median

EPOCHS = 27
# What each replay prunes with: automl's own pruner by name, from its first rung.
PRUNERS = {
    "sha, first rung 1": ("sha", 1),
    "sha, first rung 2": ("sha", 2),
    "sha, first rung 3": ("sha", 3),
    "hyperband, from 1": ("hyperband", 1),
    "no pruning": ("none", 1),
}


def stream(curves: Sequence[Curve], pruner: str, seed: int) -> Iterator[list[float]]:
    """Trials drawn from `curves` one at a time and pruned by `pruner`: each trial's validation
    accuracies for the epochs it trained."""
    import optuna

    draw = random.Random(seed)
    study = optuna.create_study(
        study_name=f"stream-{seed}",  # Hyperband's brackets hash it: the same name, the same run
        direction="maximize",
        pruner=engines.make_pruner(
            PRUNERS[pruner][0], epochs=EPOCHS, min_epochs=PRUNERS[pruner][1]
        ),
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )
    while True:
        curve = curves[draw.randrange(len(curves))]
        trial = study.ask()
        trained: list[float] = []
        pruned = False
        for epoch, logs in enumerate(curve[:EPOCHS], start=1):
            trained.append(float(logs["val_accuracy"]))
            trial.report(trained[-1], epoch)
            if epoch < EPOCHS and trial.should_prune():
                pruned = True
                break
        yield trained
        state = optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE
        study.tell(trial, None if pruned else winner_key(curve)[0], state=state)


def epochs_to(
    curves: Sequence[Curve], target: float, pruner: str, budget: int, seed: int
) -> int | None:
    """Epochs a stream of trials drawn from `curves` trains until one reaches `target`."""
    spent = 0
    for trained in stream(curves, pruner, seed):
        if spent >= budget:  # a trial begun within the budget runs to its end
            return None
        for value in trained:
            spent += 1
            if value >= target - 1e-9:
                return spent
    return None  # pragma: no cover (a stream is endless)


def saved(curves: Sequence[Curve], pruner: str, trials: int, seed: int) -> float:
    """The fraction of `trials` × 27 epochs a stream of `trials` trials did not train (B3's
    measure, without B3's two workers)."""
    trains = stream(curves, pruner, seed)
    spent = sum(len(next(trains)) for _ in range(trials))
    return 1 - spent / (trials * EPOCHS)


def main() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--streams", type=int, default=60, help="streams per seed's pool")
    parser.add_argument("--budget", type=int, default=1500, help="epochs a stream may train")
    parser.add_argument(
        "--trials", type=int, default=100, help="trials a stream runs for the epochs saved"
    )
    args = parser.parse_args()
    files = args.files or [
        RESULTS / f"b2_pruning_analysis_{name}.json"
        for name in ("small_cnn_mnist5k", "small_cnn_digits", "digits")
    ]
    for path in files:
        runs = json.loads(path.read_text())["runs"]
        print(f"{path.name} ({len(runs)} seeds x {len(runs[0]['curves'])} trials)")
        for pruner in PRUNERS:
            spent: list[float] = []
            for run in runs:
                target = max(winner_key(c)[0] for c in run["curves"])
                for index in range(args.streams):
                    got = epochs_to(run["curves"], target, pruner, args.budget, index)
                    spent.append(float("inf") if got is None else got)
            never = sum(1 for s in spent if s == float("inf"))
            middle = median(spent)
            shown = "never" if middle == float("inf") else f"{middle:.0f}"
            fractions = [
                saved(run["curves"], pruner, args.trials, index)
                for run in runs
                for index in range(args.streams // 6 or 1)
            ]
            print(
                f"  {pruner}: median {shown} epochs; never in {never} of {len(spent)} streams;"
                f" {median(fractions):.0%} of {args.trials} x {EPOCHS} epochs saved (median)"
            )


if __name__ == "__main__":
    main()
