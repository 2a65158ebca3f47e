"""The scheduler, pool and store end to end, with the function executor (no TensorFlow in the
workers) so that scheduling, faults and resume are tested quickly and for real: real processes,
real Optuna, real SQLite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from automl.errors import AutoMLError, StoreError, UsageError
from automl.lifetime import process_alive
from automl.search import SearchConfig, engines, run_search
from automl.search.devices import Gpu
from automl.storage.attributes import SETTINGS
from automl.storage.records import StudyRecord, TrialState
from automl.storage.store import StudyStore
from benchmarks.b9_kill_campaign import search_pids, worker_pids
from benchmarks.common import cmdline

from ..conftest import REPO

SPACE = Path(__file__).with_name("function_space.py")


def config(**changes: Any) -> SearchConfig:
    base: dict[str, Any] = {
        "space": "space.py",
        "trials": 4,
        "executor": "function",
        "epochs": 3,
        "workers": 1,
    }
    return SearchConfig(**{**base, **changes})


def store(workdir: Path) -> StudyStore:
    return StudyStore(f"sqlite:///{workdir / 'runs' / 'automl.db'}")


def log_entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def fake_gpus(count: int) -> Any:
    return lambda: [Gpu(index=i, name="Simulated GPU", memory_mib=16000) for i in range(count)]


# -- devices --------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 4])
def test_simulated_gpus_pin_one_worker_each_and_keep_all_busy(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    log = workdir / "log.jsonl"
    monkeypatch.setenv("AUTOML_TEST_LOG", str(log))
    monkeypatch.setenv("AUTOML_TEST_DELAY", "0.3")
    summary = run_search(
        config(trials=2 * count, pruner="none", workers=None), gpu_probe=fake_gpus(count), cpus=8
    )
    assert summary.record.finished == 2 * count
    entries = log_entries(log)
    assert len(entries) == 2 * count
    by_pid: dict[int, set[str]] = {}
    for entry in entries:
        by_pid.setdefault(entry["pid"], set()).add(entry["cuda"])
        assert entry["threads"] == str(8 // count)
    # One process per GPU, each pinned to its own device.
    assert sorted(cuda for devices in by_pid.values() for cuda in devices) == [
        str(i) for i in range(count)
    ]
    # All slots busy at once: at some moment `count` trials overlapped.
    moments = sorted(e["start"] + 0.01 for e in entries)
    concurrent = max(sum(1 for e in entries if e["start"] <= m < e["end"]) for m in moments)
    assert concurrent == count
    assert set(summary.utilisation) == {f"gpu{i}" for i in range(count)}


def test_trials_per_gpu_packs_slots(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = workdir / "log.jsonl"
    monkeypatch.setenv("AUTOML_TEST_LOG", str(log))
    monkeypatch.setenv("AUTOML_TEST_DELAY", "0.2")
    summary = run_search(
        config(trials=4, trials_per_gpu=2, pruner="none", workers=None),
        gpu_probe=fake_gpus(2),
        cpus=4,
    )
    assert set(summary.utilisation) == {"gpu0.0", "gpu0.1", "gpu1.0", "gpu1.1"}
    devices = sorted(e["cuda"] for e in log_entries(log))
    assert devices == ["0", "0", "1", "1"]


def test_cpu_workers_split_threads(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = workdir / "log.jsonl"
    monkeypatch.setenv("AUTOML_TEST_LOG", str(log))
    run_search(config(trials=2, workers=2), gpu_probe=fake_gpus(0), cpus=2)
    assert {(e["cuda"], e["threads"]) for e in log_entries(log)} == {("-1", "1")}


def test_device_errors(workdir: Path) -> None:
    with pytest.raises(
        UsageError, match=r"--gpus names GPU 3, which is not visible \(visible: 0, 1\)"
    ):
        run_search(config(gpus=(3,)), gpu_probe=fake_gpus(2), cpus=2)
    with pytest.raises(UsageError, match=r"--workers 5 is more than the 2 usable CPU core\(s\)"):
        run_search(config(workers=5), gpu_probe=fake_gpus(0), cpus=2)


# -- budget, resume and hashes --------------------------------------------------------------------


def test_resume_to_a_larger_total(workdir: Path) -> None:
    first = run_search(config(trials=3), gpu_probe=fake_gpus(0))
    assert first.record.finished == 3
    before = {t.number: (t.state, t.value) for t in first.record.trials}
    started: list[Any] = []

    class Observer:
        def search_started(self, start: Any) -> None:
            started.append(start)

        def __getattr__(self, name: str) -> Any:
            return lambda *args: None

    second = run_search(config(trials=5), Observer(), gpu_probe=fake_gpus(0))  # type: ignore[arg-type]
    assert started[0].resumed and started[0].finished == 3 and started[0].target == 5
    assert second.record.finished == 5
    after = {t.number: (t.state, t.value) for t in second.record.trials}
    assert {n: after[n] for n in before} == before  # finished trials unchanged
    third = run_search(config(trials=5), gpu_probe=fake_gpus(0))
    assert len(third.record.trials) == 5  # target reached: nothing more runs


def test_a_resumed_search_uses_its_recorded_space_without_the_preflight_build(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preflight builds every branch of the space (every backbone of `cnn.py`) before the
    first trial; a study that recorded them with the same space file resumes without it."""
    builds = workdir / "preflight.txt"
    monkeypatch.setenv("AUTOML_TEST_PREFLIGHT_LOG", str(builds))
    run_search(config(trials=2, workers=2), gpu_probe=fake_gpus(0), cpus=2)
    assert sorted(builds.read_text().split()) == ["a", "b"]  # both branches of `kind`
    second = run_search(config(trials=6, workers=2), gpu_probe=fake_gpus(0), cpus=2)
    assert second.record.finished == 6
    assert sorted(builds.read_text().split()) == ["a", "b"]  # no second preflight
    # The stored space drives the sampler: trials of branch b still get their `shift`.
    kinds = {t.params["kind"]: t.params for t in second.record.trials}
    assert "shift" not in kinds.get("a", {})
    assert all("shift" in t.params for t in second.record.trials if t.params["kind"] == "b")
    # Another space file (allowed): its parameters are recorded again.
    space = workdir / "space.py"
    space.write_text(space.read_text() + "\n# changed\n")
    run_search(config(trials=7, workers=2, allow_space_change=True), gpu_probe=fake_gpus(0), cpus=2)
    assert sorted(builds.read_text().split()) == ["a", "a", "b", "b"]


def test_changed_space_is_refused(workdir: Path) -> None:
    run_search(config(trials=1), gpu_probe=fake_gpus(0))
    space = workdir / "space.py"
    space.write_text(space.read_text() + "\n# changed\n")
    with pytest.raises(StoreError) as caught:
        run_search(config(trials=2), gpu_probe=fake_gpus(0))
    message = str(caught.value)
    assert "the space file changed" in message
    assert "--allow-space-change" in message and "--study NEW" in message
    summary = run_search(config(trials=2, allow_space_change=True), gpu_probe=fake_gpus(0))
    assert summary.record.finished == 2


def test_changed_data_is_refused(workdir: Path) -> None:
    from automl.data import DataOptions

    run_search(config(trials=1), gpu_probe=fake_gpus(0))
    with pytest.raises(StoreError, match=r"the data changed"):
        run_search(config(trials=2, data_options=DataOptions(seed=5)), gpu_probe=fake_gpus(0))


def test_study_records_what_reproduces_it(workdir: Path) -> None:
    summary = run_search(config(trials=2, seed=3), gpu_probe=fake_gpus(0))
    record = summary.record
    assert record.space.sha256 and "def build(hp" in record.space.source
    assert {p["name"] for p in record.space.parameters} == {"x", "kind", "shift"}
    assert record.data.source == "digits" and len(record.data.sha256) == 64
    assert record.settings.seed == 3 and record.settings.sampler == "tpe"
    assert record.runs[-1].versions["optuna"]
    history = json.loads((workdir / "runs" / "space" / "histories" / "trial-0.json").read_text())
    assert len(history) >= 1 and "score" in history[0]


def test_optuna_cli_reads_the_store(workdir: Path) -> None:
    run_search(config(trials=2, study="readable"), gpu_probe=fake_gpus(0))
    url = f"sqlite:///{workdir / 'runs' / 'automl.db'}"
    optuna_cli = [sys.executable, "-c", "from optuna.cli import main; main()"]
    studies = subprocess.run(
        [*optuna_cli, "studies", "--storage", url], capture_output=True, text=True, timeout=120
    )
    assert studies.returncode == 0, studies.stderr
    assert "readable" in studies.stdout
    trials = subprocess.run(
        [*optuna_cli, "trials", "--study-name", "readable", "--storage", url, "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert trials.returncode == 0, trials.stderr
    rows = json.loads(trials.stdout)
    assert len(rows) == 2 and all(row["state"] in ("COMPLETE", "PRUNED") for row in rows)


# -- engines --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sampler", "kind", "trials"),
    [
        ("random", "RandomSampler", 3),
        ("cmaes", "CmaEsSampler", 4),
        ("qmc", "QMCSampler", 4),
        ("tpe", "TPESampler", 13),  # past TPE's 10 random start-up trials
    ],
)
def test_samplers_run_and_do_the_sampling(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, sampler: str, kind: str, trials: int
) -> None:
    import optuna

    from automl.search import engines

    made: list[Any] = []
    model_draws: list[int] = []
    real = engines.make_sampler

    def spy(*args: Any, **kwargs: Any) -> Any:
        instance = real(*args, **kwargs)
        relative = instance.sample_relative

        def sample_relative(study: Any, trial: Any, space: Any) -> Any:
            drawn = relative(study, trial, space)
            if drawn:  # the sampler's own model chose these values (not a random start-up)
                model_draws.append(trial.number)
            return drawn

        instance.sample_relative = sample_relative
        made.append(instance)
        return instance

    monkeypatch.setattr(engines, "make_sampler", spy)
    summary = run_search(
        config(trials=trials, sampler=sampler, study=f"s-{sampler}"), gpu_probe=fake_gpus(0)
    )
    assert summary.record.finished == trials
    assert isinstance(made[-1], getattr(optuna.samplers, kind))
    if sampler == "random":
        assert model_draws == []  # random search has no model
    else:
        assert model_draws and max(model_draws) == trials - 1
    if sampler == "tpe":
        assert min(model_draws) >= 10


def test_random_sampler_draws_the_same_configurations_whatever_the_parallelism(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parallel trials ask for their values interleaved; with one shared random stream the
    # configurations of `--sampler random --seed S` would depend on the worker count (and B4's
    # 1-vs-N comparisons would time different models).
    monkeypatch.setenv("AUTOML_TEST_DELAY", "0.05")
    params = {}
    for workers in (1, 2):
        summary = run_search(
            config(
                trials=8,
                sampler="random",
                seed=5,
                pruner="none",
                workers=workers,
                study=f"w{workers}",
            ),
            gpu_probe=fake_gpus(0),
        )
        params[workers] = {t.number: t.params for t in summary.record.trials}
    assert len(params[1]) == 8 and params[1] == params[2]
    assert len({round(p["x"], 9) for p in params[1].values()}) == 8  # still random draws


def test_random_sampler_draws_the_same_configurations_whatever_was_retried() -> None:
    """A retried trial (enqueued with its parameters) does not shift the draws of the trials
    after it: a search with kills trains the same models as the same search without (B9)."""
    import optuna

    from automl.search.engines import trial_seeded_random_sampler

    def fresh_draws(retry_after: set[int]) -> list[dict[str, float]]:
        study = optuna.create_study(sampler=trial_seeded_random_sampler(5))
        draws = []
        while len(draws) < 6:
            trial = study.ask()
            params = {"x": trial.suggest_float("x", 0.0, 1.0)}
            if "fixed_params" not in study.trials[trial.number].system_attrs:
                draws.append(params)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if trial.number in retry_after:
                study.enqueue_trial(params)  # as the scheduler re-queues a killed trial
        return draws

    plain, retried = fresh_draws(set()), fresh_draws({0, 2, 3})
    assert plain == retried
    assert len({d["x"] for d in plain}) == 6  # still random draws


def test_grid_sampler_needs_discrete_parameters(workdir: Path) -> None:
    with pytest.raises(AutoMLError, match=r"--sampler grid needs discrete parameters.*'x'"):
        run_search(config(trials=2, sampler="grid"), gpu_probe=fake_gpus(0))


def test_a_resumed_grid_search_goes_on_with_the_recorded_space(workdir: Path) -> None:
    """The grid sampler needs the space's parameters; a resume takes them from the study."""
    (workdir / "space.py").write_text(
        "OBJECTIVE = ('score', 'maximize')\n"
        "def build(hp):\n"
        "    x = hp.Choice('x', [1, 2, 3])\n"
        "    y = hp.Choice('y', ['a', 'b'])\n"
        "    yield x + (y == 'b')\n"
    )
    first = run_search(config(trials=2, sampler="grid", pruner="none"), gpu_probe=fake_gpus(0))
    assert first.record.finished == 2
    second = run_search(config(trials=10, sampler="grid", pruner="none"), gpu_probe=fake_gpus(0))
    pairs = [(t.params["x"], t.params["y"]) for t in second.record.trials]
    assert sorted(pairs) == sorted((x, y) for x in (1, 2, 3) for y in ("a", "b"))  # each once
    assert second.stopped == "the grid sampler has tried every combination"


@pytest.mark.parametrize("pruner", [None, "hyperband"])
def test_pruners_stop_bad_trials_at_their_rungs(workdir: Path, pruner: str | None) -> None:
    # None: the default, successive halving (eta 3) from epoch 1 (a ninth of 9 epochs).
    changes = {"pruner": pruner} if pruner else {}
    summary = run_search(
        config(trials=20, epochs=9, sampler="random", **changes), gpu_probe=fake_gpus(0)
    )
    assert summary.record.settings.pruner == (pruner or "sha")
    counts = summary.record.counts()
    assert counts[TrialState.PRUNED] > 0 and counts[TrialState.COMPLETE] > 0
    for trial in summary.record.trials:
        if trial.state is TrialState.COMPLETE:
            assert trial.epochs_run == 9
        if trial.state is TrialState.PRUNED:
            assert trial.epochs_run in (1, 3)  # rungs at 1 and 3 epochs; 9 is the budget


def test_the_first_rung_is_chosen_stored_and_kept_by_a_resumed_study(workdir: Path) -> None:
    """--min-epochs 3 of 27: successive halving compares trials at epochs 3 and 9; the rung is
    stored, a resume without the flag keeps it, and a study stored before it was recorded
    (rungs from epoch 1) goes on pruning from epoch 1, so its trials stay comparable."""
    first = run_search(
        config(trials=12, epochs=27, sampler="random", min_epochs=3), gpu_probe=fake_gpus(0)
    )
    assert first.record.settings.min_epochs == 3
    pruned = [t.epochs_run for t in first.record.trials if t.state is TrialState.PRUNED]
    assert pruned and set(pruned) <= {3, 9} and 3 in pruned

    kept = run_search(config(trials=24, epochs=27, sampler="random"), gpu_probe=fake_gpus(0))
    assert kept.record.settings.min_epochs == 3
    later = [
        t.epochs_run for t in kept.record.trials if t.number >= 12 and t.state is TrialState.PRUNED
    ]
    assert later and set(later) <= {3, 9}

    # The study as an older automl stored it: settings without the first rung.
    study = store(workdir).load_study("space")
    older = dict(study.user_attrs[SETTINGS])
    del older["min_epochs"]
    study.set_user_attr(SETTINGS, older)
    resumed = run_search(config(trials=40, epochs=27, sampler="random"), gpu_probe=fake_gpus(0))
    assert resumed.record.settings.min_epochs == 1
    newest = [
        t.epochs_run
        for t in resumed.record.trials
        if t.number >= 24 and t.state is TrialState.PRUNED
    ]
    assert newest and set(newest) <= {1, 3, 9} and 1 in newest


def test_a_new_study_prunes_from_epoch_1_by_default(workdir: Path) -> None:
    summary = run_search(config(trials=12, epochs=27, sampler="random"), gpu_probe=fake_gpus(0))
    assert summary.record.settings.min_epochs == engines.DEFAULT_MIN_EPOCHS == 1
    pruned = [t.epochs_run for t in summary.record.trials if t.state is TrialState.PRUNED]
    assert pruned and set(pruned) <= {1, 3, 9} and 1 in pruned


def test_the_pruners_rungs_follow_the_first_rung() -> None:
    text, brackets = engines.pruner_budget("sha", epochs=27, min_epochs=3)
    assert text == "successive halving, η=3, 3–27 epochs per trial, 1 bracket(s)"
    assert [b.rungs for b in brackets] == [(3, 9)]
    # Optuna's Hyperband: floor(log3(27 / 3)) + 1 brackets, bracket i from 3 x 3**i epochs.
    text, brackets = engines.pruner_budget("hyperband", epochs=27, min_epochs=3)
    assert text == "Hyperband, η=3, 3–27 epochs per trial, 3 bracket(s)"
    assert [b.rungs for b in brackets] == [(3, 9), (9,), ()]
    assert [b.rungs for b in engines.pruner_budget("sha", epochs=9)[1]] == [(1, 3)]


def test_a_first_rung_that_leaves_nothing_to_prune_is_refused(workdir: Path) -> None:
    with pytest.raises(UsageError, match=r"--min-epochs 9 leaves no epoch to prune at with --ep"):
        run_search(config(epochs=9, min_epochs=9), gpu_probe=fake_gpus(0))
    assert (
        not (workdir / "runs" / "automl.db").exists() or "space" not in store(workdir).study_names()
    )
    # Without pruning the first rung does not matter.
    run_search(config(trials=1, epochs=3, min_epochs=5, pruner="none"), gpu_probe=fake_gpus(0))


# -- faults ---------------------------------------------------------------------------------------


def test_nan_fails_the_trial_and_never_wins(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOML_TEST_FAIL", "nan")
    with pytest.raises(AutoMLError, match=r"3 consecutive trials failed \(last: loss became NaN"):
        # No pruner: a trial pruned at its first epoch would never reach the NaN of epoch 2.
        run_search(config(trials=5, max_failures=3, pruner="none"), gpu_probe=fake_gpus(0))
    record = store(workdir).record("space")
    assert record.counts()[TrialState.FAILED] == 3
    assert all(t.failure == "loss became NaN at epoch 2" for t in record.trials)
    assert record.best() is None


def test_exception_in_build_fails_trials_then_stops(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOML_TEST_FAIL", "build")
    with pytest.raises(AutoMLError) as caught:
        run_search(config(trials=5, max_failures=2), gpu_probe=fake_gpus(0))
    assert "2 consecutive trials failed" in str(caught.value)
    assert "raise --max-failures" in str(caught.value)
    record = store(workdir).record("space")
    assert all("this space always fails" in (t.failure or "") for t in record.trials)


def _scheduler(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`automl search` on the function space in its own process."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "automl",
            "search",
            "space.py",
            "--executor",
            "function",
            "--epochs",
            "5",
            "--workers",
            "1",
            *args,
        ],
        cwd=workdir,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


def _wait_for(
    predicate: Any, timeout: float = 60.0, scheduler: subprocess.Popen[str] | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    if scheduler is None:
        raise AssertionError("timed out waiting")
    # Say what the search was doing: its exit status and the end of what it printed.
    running = scheduler.poll() is None
    scheduler.kill()
    out, err = scheduler.communicate()
    raise AssertionError(
        f"timed out waiting; the search {'was still running' if running else 'had exited'} "
        f"(exit {scheduler.returncode}); stdout: {out[-1500:]!r}; stderr: {err[-1500:]!r}"
    )


def _running_workers(scheduler_pid: int) -> list[int]:
    """Worker processes of a scheduler (not multiprocessing's resource tracker)."""
    return sorted(worker_pids(scheduler_pid))


def _trials(workdir: Path, state: TrialState | None = None) -> int:
    """Trials of the search in `state` (None: the finished ones); 0 before its study exists."""
    try:
        record = store(workdir).record("space")
    except AutoMLError:  # no store or no study yet
        return 0
    return record.finished if state is None else record.counts()[state]


def _ended_after_worker_deaths(
    scheduler: subprocess.Popen[str], workdir: Path, trials: int, deaths: int
) -> StudyRecord:
    """The search exits 0 with every trial finished; `deaths` failed, each as a killed worker."""
    out, err = scheduler.communicate(timeout=120)
    assert scheduler.returncode == 0, err
    record = store(workdir).record("space")
    assert record.finished == trials
    failed = [t for t in record.trials if t.state is TrialState.FAILED]
    assert len(failed) == deaths
    assert all("died (signal 9 (SIGKILL))" in (t.failure or "") for t in failed)
    assert "starting a new worker" in out
    return record


def test_worker_killed_mid_trial_is_replaced(workdir: Path) -> None:
    """F1: kill -9 a worker three times; each trial fails and is retried, the study finishes."""
    scheduler = _scheduler(
        workdir, "--trials", "6", "--pruner", "none", env={"AUTOML_TEST_DELAY": "0.3"}
    )
    killed = 0
    while killed < 3:
        _wait_for(lambda: _trials(workdir, TrialState.RUNNING) == 1, scheduler=scheduler)
        time.sleep(0.5)  # mid-trial
        workers = _wait_for(lambda: _running_workers(scheduler.pid))
        os.kill(workers[0], signal.SIGKILL)
        killed += 1
        # Wait for the killed trial to be failed. Not for "no trial running": the scheduler
        # asks the next trial at once, so that moment can pass between two polls (it did in
        # CI, and the test then waited for a running trial after the search had ended).
        _wait_for(lambda k=killed: _trials(workdir, TrialState.FAILED) >= k, scheduler=scheduler)
    record = _ended_after_worker_deaths(scheduler, workdir, trials=6, deaths=3)
    failed = [t for t in record.trials if t.state is TrialState.FAILED]
    # Each failed trial is retried once with the same parameters (a retry is not retried).
    retried = {t.retry_of for t in record.trials if t.retry_of is not None}
    assert retried == {t.number for t in failed if t.retry_of is None}
    by_number = {t.number: t for t in record.trials}
    for trial in record.trials:
        if trial.retry_of is not None:
            assert trial.params == by_number[trial.retry_of].params


def test_worker_dying_with_a_message_unread_is_replaced(workdir: Path) -> None:
    """F1: a worker dies after sending an epoch report the scheduler has not read yet.

    The scheduler is paused (SIGSTOP) so that the report waits in the pipe, the worker is
    killed, and the scheduler resumed: its reply meets a closed pipe. That must count as the
    worker's death (trial failed and retried, new worker), not end the search with
    BrokenPipeError as it once did when a loaded machine delayed the scheduler.
    """
    scheduler = _scheduler(
        workdir, "--trials", "3", "--pruner", "none", env={"AUTOML_TEST_DELAY": "0.3"}
    )
    _wait_for(lambda: _trials(workdir, TrialState.RUNNING) == 1, scheduler=scheduler)
    workers = _wait_for(lambda: _running_workers(scheduler.pid))
    time.sleep(0.5)  # mid-trial
    scheduler.send_signal(signal.SIGSTOP)
    try:
        time.sleep(1.0)  # the worker reports its next epoch and waits for the reply
        os.kill(workers[0], signal.SIGKILL)
        _wait_for(lambda: not process_alive(workers[0]), timeout=5)
    finally:
        scheduler.send_signal(signal.SIGCONT)
    _ended_after_worker_deaths(scheduler, workdir, trials=3, deaths=1)


def test_scheduler_killed_then_rerun(workdir: Path) -> None:
    """F2: kill -9 the scheduler: workers exit by themselves; a rerun loses no finished trial."""
    scheduler = _scheduler(
        workdir, "--trials", "5", "--pruner", "none", env={"AUTOML_TEST_DELAY": "0.3"}
    )
    _wait_for(lambda: _trials(workdir) >= 2, scheduler=scheduler)
    _wait_for(lambda: _trials(workdir, TrialState.RUNNING) == 1, scheduler=scheduler)
    workers = _running_workers(scheduler.pid)
    assert workers
    # On Linux the workers are forked from the forkserver the scheduler started; it goes too.
    everything = search_pids(scheduler.pid)
    servers = [p for p in everything - set(workers) if b"forkserver" in cmdline(p)]
    assert len(servers) == 1 and set(workers) <= everything
    before = {t.number: t.value for t in store(workdir).record("space").trials if t.state.finished}
    scheduler.send_signal(signal.SIGKILL)
    scheduler.wait(timeout=10)
    _wait_for(lambda: not any(process_alive(pid) for pid in everything), timeout=5)
    assert _trials(workdir, TrialState.RUNNING) == 1  # left RUNNING by the dead scheduler
    rerun = _scheduler(workdir, "--trials", "5", "--pruner", "none")
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert "Re-queued trial(s)" in out
    record = store(workdir).record("space")
    assert record.finished == 5
    assert {n: v for n, v in before.items()} == {
        t.number: t.value for t in record.trials if t.number in before
    }
    stale = [t for t in record.trials if t.failure == "the scheduler stopped while it ran"]
    assert len(stale) == 1
    assert any(t.retry_of == stale[0].number and t.state.finished for t in record.trials)


@pytest.mark.parametrize(
    ("signum", "code", "shown"),
    [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")],
    ids=["ctrl-c", "sigterm"],
)
def test_an_interrupt_records_running_trials_and_exits_128_plus_the_signal(
    workdir: Path, signum: int, code: int, shown: str
) -> None:
    """F3, F11: Ctrl-C, and SIGTERM (docker stop, Slurm, systemd), stop the workers, record the
    running trial (not RUNNING) and re-queue it, exit 130 / 143; a rerun resumes."""
    scheduler = _scheduler(
        workdir, "--trials", "4", "--pruner", "none", env={"AUTOML_TEST_DELAY": "0.5"}
    )
    _wait_for(lambda: _trials(workdir, TrialState.RUNNING) == 1, scheduler=scheduler)
    workers = _running_workers(scheduler.pid)
    scheduler.send_signal(signum)
    out, err = scheduler.communicate(timeout=60)
    assert scheduler.returncode == code, err
    assert "run the same command again to resume" in out
    record = store(workdir).record("space")
    assert record.counts()[TrialState.RUNNING] == 0
    assert [t.failure for t in record.trials if t.state is TrialState.FAILED] == [
        f"interrupted ({shown})"
    ]
    assert record.counts()[TrialState.WAITING] == 1  # re-queued for the resume
    _wait_for(lambda: not any(process_alive(pid) for pid in workers), timeout=10)
    resumed = _scheduler(workdir, "--trials", "4", "--pruner", "none")
    resumed.communicate(timeout=120)
    assert resumed.returncode == 0
    assert store(workdir).record("space").finished == 4


def test_second_search_on_the_same_sqlite_study_is_refused_and_readers_work(
    workdir: Path,
) -> None:
    """F5 and F6: a second search is refused clearly; `automl show` reads during the search."""
    scheduler = _scheduler(
        workdir, "--trials", "4", "--pruner", "none", env={"AUTOML_TEST_DELAY": "0.3"}
    )
    _wait_for(lambda: _trials(workdir, TrialState.RUNNING) == 1, scheduler=scheduler)
    second = _scheduler(workdir, "--trials", "4")
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2
    assert "is being searched right now" in err and "--study NEW" in err
    for _ in range(3):
        show = subprocess.run(
            [sys.executable, "-m", "automl", "show", "space"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert show.returncode == 0, show.stderr
        assert "Study 'space'" in show.stdout
    _out, err = scheduler.communicate(timeout=120)
    assert scheduler.returncode == 0, err
    assert store(workdir).record("space").finished == 4


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "--trials must be at least 1, got 0"),
        (["--trials", "-5"], "--trials must be at least 1, got -5"),
        (["--trials", "abc"], "--trials needs a whole number, got 'abc'"),
        (["--timeout", "soon"], "--timeout needs a duration like 90m"),
        (["--workers", "64"], "--workers 64 is more than the"),
        (["--gpus", "7"], "--gpus names GPU 7, which is not visible"),
        (["--study", "../escape"], "study name '../escape' is not allowed"),
        (["--study", "a/b"], "study name 'a/b' is not allowed"),
        (["--study=-rf"], "study name '-rf' is not allowed"),
        (["--study", "x" * 129], "is not allowed"),
        (["--storage", "postgres://u:secret@h/db"], "write postgresql:// instead"),
        (["--storage", "sqlite://"], "an in-memory SQLite database would lose every trial"),
        (["--storage", "sqlite:///no/such/dir/x.db"], "the folder no/such/dir does not exist"),
        (["--storage", "nonsense"], "not a database URL"),
        (["--sampler", "bayes"], "invalid choice: 'bayes'"),
    ],
)
def test_bad_search_input_exits_2_with_one_line(
    workdir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from automl.cli import main

    code = main(["search", "space.py", "--executor", "function", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "secret" not in err
    assert not (workdir / "runs" / "automl.db").exists()  # refused before the store is made


def test_show_and_studies_on_missing_things(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from automl.cli import main

    assert main(["studies"]) == 2
    assert "no study store at" in capsys.readouterr().err
    run_search(config(trials=1), gpu_probe=fake_gpus(0))
    assert main(["show", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no study named 'nope'" in err and "studies there: space" in err
    assert main(["studies"]) == 0
    assert "space" in capsys.readouterr().out


def test_json_outputs_are_stdout_alone(workdir: Path) -> None:
    """`--json` on search, studies and show: stdout is one JSON document that a script reads;
    progress and messages go to stderr. `--study-name` is `--study` (Optuna's spelling)."""
    scheduler = _scheduler(workdir, "--trials", "3", "--study-name", "named", "--json")
    out, err = scheduler.communicate(timeout=120)
    assert scheduler.returncode == 0, err
    summary = json.loads(out)
    assert summary["study"] == "named" and summary["finished"] == 3 and summary["target"] == 3
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] == 3
    best = summary["best"]
    assert "x" in best["params"] and isinstance(best["value"], float)
    assert "Study 'named': 3 of 3 finished" in err
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    listed = subprocess.run(
        [sys.executable, "-m", "automl", "studies", "--json"],
        cwd=workdir, capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    (study,) = json.loads(listed.stdout)
    assert study["name"] == "named" and study["best_value"] == best["value"]
    shown = subprocess.run(
        [sys.executable, "-m", "automl", "show", "named", "--json", "--top", "2"],
        cwd=workdir, capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    board = json.loads(shown.stdout)
    assert [t["rank"] for t in board["trials"]] == [1, 2]
    assert board["trials"][0]["number"] == best["number"] and board["metric"] == "score"


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("torch") is not None,
    reason="PyTorch is installed: the GP sampler runs",
)
def test_gp_sampler_without_pytorch_says_what_to_install(workdir: Path) -> None:
    with pytest.raises(UsageError, match=r"--sampler gp needs PyTorch and SciPy"):
        run_search(config(trials=2, sampler="gp"), gpu_probe=fake_gpus(0))
