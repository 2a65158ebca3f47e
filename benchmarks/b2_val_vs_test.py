"""Issue 22: does B2's "final best validation accuracy" order the arms the way their winners'
test accuracy does?

Reads the saved B2 runs (no training) and, for every seed of every cell, compares the arms
pairwise: for each pair whose final best validation accuracy differs, does the arm with the
higher validation accuracy also have the higher test accuracy (agrees), the lower (disagrees),
or the same (tie)? The pairs are grouped by how many validation images apart the two arms are.
It also prints each seed's Spearman correlation between the arms' validation and test figures,
and one binomial standard error of an accuracy near the cell's best, in images.

    python benchmarks/b2_val_vs_test.py [FILE ...]

Default files: every `results/b2_search_quality_*.json` except the 3-arm ones. Nothing is written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, median, spearman, table

# Validation and test images of each data set's split (benchmarks/common.py's data_source).
SPLIT_IMAGES = {"digits": 360, "mnist5k": 1000}
GAP_GROUPS = ((1, 1), (2, 2), (3, 4), (5, 10**6))
CELL_HEADER = ["cell", "seeds", "Spearman(val, test) over the arms, per seed", "1 SE (images)"]
GAP_HEADER = ["validation gap (images)", "arm pairs", "test agrees", "disagrees", "ties", "agrees"]


def images(accuracy: float, total: int) -> int:
    """An accuracy as a count of images; refuses one that is not a whole count."""
    count = accuracy * total
    if abs(count - round(count)) > 0.05:
        raise SystemExit(f"b2_val_vs_test: {accuracy} is not a whole count of {total} images")
    return round(count)


def arms_of(run: dict[str, Any], total: int) -> dict[str, tuple[int, int]]:
    """Each finished arm's (final best validation images, winner's test images)."""
    return {
        name: (images(arm["final_best"], total), images(arm["test_accuracy"], total))
        for name, arm in run["arms"].items()
        if arm.get("final_best") is not None and arm.get("test_accuracy") is not None
    }


def compare(files: Sequence[Path]) -> tuple[list[list[Any]], list[list[Any]]]:
    per_cell: list[list[Any]] = []
    counts = {group: [0, 0, 0] for group in GAP_GROUPS}
    for path in files:
        saved = json.loads(path.read_text())
        total = SPLIT_IMAGES[saved["data"]]
        rhos: list[str] = []
        bests: list[int] = []
        for run in saved["runs"]:
            arms = arms_of(run, total)
            rho = spearman([v for v, _ in arms.values()], [t for _, t in arms.values()])
            rhos.append("n/a" if math.isnan(rho) else f"{rho:+.2f}")
            bests.append(max(v for v, _ in arms.values()))
            for (va, ta), (vb, tb) in combinations(arms.values(), 2):
                gap = abs(va - vb)
                if gap == 0:
                    continue
                group = next(g for g in GAP_GROUPS if g[0] <= gap <= g[1])
                higher, lower = (ta, tb) if va > vb else (tb, ta)
                counts[group][0 if higher > lower else 1 if higher < lower else 2] += 1
        p = median(bests) / total
        se = math.sqrt(p * (1 - p) / total) * total
        cell = path.stem.removeprefix("b2_search_quality_")
        per_cell.append([cell, len(saved["runs"]), " / ".join(rhos), f"{se:.1f}"])
    by_gap = []
    for (low, high), (agree, disagree, tie) in counts.items():
        label = f"{low}" if low == high else f"{low}–{high}" if high < 10**6 else f"≥ {low}"
        pairs = agree + disagree + tie
        share = f"{agree / pairs:.0%}" if pairs else "n/a"
        by_gap.append([label, pairs, agree, disagree, tie, share])
    return per_cell, by_gap


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args(argv)
    files = args.files or sorted(
        p for p in RESULTS.glob("b2_search_quality_*.json") if not p.stem.endswith("_3arms")
    )
    if missing := [str(f) for f in files if not f.is_file()]:
        parser.error(f"no such results file: {', '.join(missing)} (see benchmarks/results/)")
    per_cell, by_gap = compare(files)
    print(table(per_cell, CELL_HEADER))
    print()
    print(table(by_gap, GAP_HEADER))


if __name__ == "__main__":
    main()
