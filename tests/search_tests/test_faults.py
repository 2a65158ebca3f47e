"""Faults and bad inputs of a real search (issue 16; RELIABILITY.md F3, F11, F13 and the bad-input
catalogue): real processes, real signals, the function executor so that each takes seconds.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import optuna
import pytest

from automl.storage.records import TrialState

from .test_search import (
    _running_workers,
    _scheduler,
    _trials,
    _wait_for,
    store,
)


def test_a_broken_space_makes_no_study_so_the_fixed_file_just_runs(workdir: Path) -> None:
    """A space whose build() raises is found before the study exists: fixing the file and
    running again must not meet 'the space file changed'."""
    space = workdir / "space.py"
    good = space.read_text()
    space.write_text(good.replace("start_epoch=0):\n", "start_epoch=0):\n    1 / 0\n"))
    broken = _scheduler(workdir, "--trials", "2")
    out, err = broken.communicate(timeout=120)
    assert broken.returncode == 2, out + err
    assert "ZeroDivisionError" in err and len(err.strip().splitlines()) == 1
    assert "space" not in store(workdir).study_names()  # nothing was created
    space.write_text(good)
    fixed = _scheduler(workdir, "--trials", "2")
    out, err = fixed.communicate(timeout=120)
    assert fixed.returncode == 0, out + err
    assert store(workdir).record("space").finished == 2


def test_a_study_left_half_created_is_completed(workdir: Path) -> None:
    """A kill -9 between creating the study and storing its attributes left a study that every
    later run refused ('not made by automl'); an empty one of ours is completed instead."""
    (workdir / "runs").mkdir()
    optuna.create_study(study_name="space", storage=f"sqlite:///{workdir / 'runs/automl.db'}")
    search = _scheduler(workdir, "--trials", "2")
    out, err = search.communicate(timeout=120)
    assert search.returncode == 0, out + err
    record = store(workdir).record("space")
    assert record.finished == 2 and record.space.sha256 and record.metric == "score"


def test_a_foreign_study_with_trials_is_still_refused(workdir: Path) -> None:
    (workdir / "runs").mkdir()
    study = optuna.create_study(
        study_name="space", storage=f"sqlite:///{workdir / 'runs/automl.db'}"
    )
    study.optimize(lambda trial: trial.suggest_float("a", 0, 1), n_trials=1)
    search = _scheduler(workdir, "--trials", "2")
    _, err = search.communicate(timeout=120)
    assert search.returncode == 2
    assert "was not made by automl" in err
    assert len(study.trials) == 1


def test_a_space_edited_during_the_search_stops_it_cleanly(workdir: Path) -> None:
    """F13: a replacement worker (after a death, OOM or recycling) must not run an edited space
    file: the search stops with one line, the running trials re-queued, nothing RUNNING."""
    scheduler = _scheduler(
        workdir, "--trials", "6", "--pruner", "none", env={"AUTOML_TEST_DELAY": "0.3"}
    )
    _wait_for(lambda: _trials(workdir, TrialState.RUNNING) == 1, scheduler=scheduler)
    space = workdir / "space.py"
    space.write_text(space.read_text() + "\n# edited while the search runs\n")
    workers = _wait_for(lambda: _running_workers(scheduler.pid))
    os.kill(workers[0], signal.SIGKILL)  # its replacement loads the edited file
    out, err = scheduler.communicate(timeout=120)
    assert scheduler.returncode == 2, out + err
    assert "space.py changed during the search" in err
    assert len(err.strip().splitlines()) == 1
    record = store(workdir).record("space")
    assert record.counts()[TrialState.RUNNING] == 0
    assert record.counts()[TrialState.WAITING] >= 1  # the killed trial, re-queued


def test_a_hung_trial_times_out_and_the_search_goes_on(workdir: Path) -> None:
    """F10: a trial stuck in its input pipeline or device fails as timed out after its
    deadline, its worker is replaced, and the search reaches its target."""
    scheduler = _scheduler(
        workdir,
        "--trials",
        "3",
        "--pruner",
        "none",
        "--trial-timeout",
        "3s",
        env={"AUTOML_TEST_HANG_ONCE": str(workdir / "hung")},
    )
    out, err = scheduler.communicate(timeout=120)
    assert scheduler.returncode == 0, out + err
    record = store(workdir).record("space")
    assert record.finished == 3
    (hung,) = [t for t in record.trials if t.state is TrialState.FAILED]
    assert hung.failure == "timed out after 3 s (--trial-timeout)"
    assert "Replacing worker cpu0 (timed out after 3 s" in out


def test_a_killed_trial_resumes_mid_way_in_its_retry(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The retry of a trial whose worker was killed continues after the last epoch it saved,
    with the earlier epochs' reports carried over."""
    scheduler = _scheduler(
        workdir, "--trials", "2", "--pruner", "none", "--epochs", "8",
        env={"AUTOML_TEST_DELAY": "0.25"},
    )  # fmt: skip
    _wait_for(lambda: _trials(workdir, TrialState.RUNNING) == 1, scheduler=scheduler)
    study = store(workdir).load_study("space")
    _wait_for(
        lambda: len(study.get_trials(deepcopy=False)[0].intermediate_values) >= 4,
        scheduler=scheduler,
    )
    os.kill(_running_workers(scheduler.pid)[0], signal.SIGKILL)
    out, err = scheduler.communicate(timeout=120)
    assert scheduler.returncode == 0, out + err
    record = store(workdir).record("space")
    killed = record.trials[0]
    retry = next(t for t in record.trials if t.retry_of == killed.number)
    assert killed.state is TrialState.FAILED and retry.state is TrialState.COMPLETE
    assert retry.resumed_epoch is not None and retry.resumed_epoch >= 3
    assert sorted(retry.intermediate) == list(range(1, 9))  # the whole curve
    assert retry.epochs_run == 8 and retry.params == killed.params
    for epoch in range(1, retry.resumed_epoch + 1):  # carried over unchanged
        assert retry.intermediate[epoch] == killed.intermediate[epoch]
    assert not list((workdir / "runs" / "space" / "resume").glob("*"))
    from automl.cli import main

    assert main(["show", "space"]) == 0
    assert f"8 (from {retry.resumed_epoch})" in capsys.readouterr().out
