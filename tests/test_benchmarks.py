"""The benchmarks' own arithmetic: B2's curves decide whether a target is met."""

from __future__ import annotations

from benchmarks.b2_search_quality import per_epoch_curve, reached


def test_b2_recount_credits_each_epoch_when_it_ends() -> None:
    # Two trials run side by side: a pruned one (1 epoch) and a long one (3 epochs) whose
    # second epoch reaches 0.9 at t = 4 s, long before its trial ends at t = 6 s.
    trials = [
        {"number": 0, "state": "complete", "started": 0.0, "completed": 6.0,
         "intermediate": {"1": 0.5, "2": 0.9, "3": 0.8}},
        {"number": 1, "state": "pruned", "started": 0.0, "completed": 1.0,
         "intermediate": {"1": 0.3}},
        {"number": 2, "state": "running", "started": 5.0, "completed": None,
         "intermediate": {"1": 0.95}},
    ]  # fmt: skip
    curve = per_epoch_curve(trials)
    assert curve == [(1.0, 1, 0.3), (2.0, 2, 0.5), (4.0, 3, 0.9), (6.0, 4, 0.9)]
    assert reached(curve, 0.9) == (4.0, 3)
    assert reached(curve, 0.95) == (None, None)
