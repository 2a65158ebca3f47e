"""F8 — resident memory of one worker over 30 sequential trials (recycling turned off).

Searches `spaces/cnn.py` on digits with one CPU worker that is never recycled, then reads the
worker's resident memory after each trial from the study (the scheduler stores it).

    python benchmarks/memory.py [--trials 30] [--epochs 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from benchmarks.common import search_cnn, table, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    from automl.storage import attributes as keys
    from automl.storage.store import StudyStore

    def read_rss(summary: object) -> list[float]:
        study = StudyStore(summary.storage_url).load_study("memory")  # type: ignore[attr-defined]
        outcomes = [
            keys.TrialOutcome.from_json(t.user_attrs.get(keys.RESULT)) for t in study.trials
        ]
        return [
            o.worker_rss_mib for o in outcomes if o is not None and o.worker_rss_mib is not None
        ]

    rss, _ = search_cnn(
        read_rss,
        trials=args.trials,
        epochs=args.epochs,
        sampler="random",
        pruner="none",
        recycle_after=10**6,
        recycle_memory_mib=1e9,
        study="memory",
    )
    growth = [b - a for a, b in itertools.pairwise(rss)]
    rows = [
        [i + 1, f"{value:.0f}"] for i, value in enumerate(rss) if i in (0, 4, 9, 19, len(rss) - 1)
    ]
    print(table(rows, ["after trial", "worker RSS MiB"]))
    per_trial = (rss[-1] - rss[0]) / max(1, len(rss) - 1)
    print(
        f"first {rss[0]:.0f} MiB, last {rss[-1]:.0f} MiB, {per_trial:.1f} MiB per trial on "
        "average; the scheduler replaces a worker whose memory grew by more than 1 GiB"
    )
    write_result(
        "memory",
        {
            "trials": args.trials,
            "epochs": args.epochs,
            "rss_mib": rss,
            "growth_per_trial_mib": per_trial,
            "steps": growth,
        },
    )


if __name__ == "__main__":
    main()
