"""RELIABILITY K: the kill campaign, small enough for CI: 10 seeded `kill -9`s of workers and the
scheduler during a 30-trial search (function executor), re-running the search after each
scheduler kill. The same campaign with real Keras trials is benchmark B9."""

from __future__ import annotations

from pathlib import Path

from benchmarks.b9_kill_campaign import run_campaign, search_command


def test_the_kill_campaign_loses_nothing(workdir: Path) -> None:
    command = search_command(
        "space.py",
        ["--executor", "function", "--trials", "30", "--workers", "2", "--epochs", "5",
         "--pruner", "none", "--seed", "3", "--quiet", "--no-retrain"],
    )  # fmt: skip
    campaign = run_campaign(
        workdir,
        command,
        trials=30,
        kills=10,
        seed=3,
        gaps=(0.5, 2.0),
        env={"AUTOML_TEST_DELAY": "0.2"},
        timeout=170.0,
    )
    assert len(campaign.kills) == 10, campaign.kills
    assert campaign.finished == 30  # exactly the target
    assert campaign.running == 0
    assert campaign.changed == []  # every trial finished before a kill is unchanged
    assert campaign.alive == []  # no worker or scheduler left behind
    assert campaign.runs == 1 + sum(kind == "scheduler" for _, kind in campaign.kills)
    # Kills cost trials, never the search: deaths and stale trials, nothing else failed.
    assert set(campaign.failures) <= {"died", "stale"}, campaign.failures
    assert campaign.resumed and campaign.epochs_saved > 0  # killed trials resumed mid-way
