"""B9 — the kill campaign: `kill -9` workers and the scheduler at random moments during a search.

A search of `--trials` trials on `--workers` workers runs while a seeded schedule kills a random
worker or the scheduler `--kills` times at random moments; after each scheduler kill the same
`automl search` command is run again. Afterwards: every trial that was finished before a kill is
still finished with the same value, nothing is left RUNNING, no process of the search is alive,
the study has exactly its target of finished trials. The wall time is compared with the same
search uninterrupted (goal ≤ 1.5×), and the epochs that mid-way resume saved are counted.

    python benchmarks/b9_kill_campaign.py --trials 30 --workers 2 --kills 10 --seed 0
    python benchmarks/b9_kill_campaign.py ... --seed 1 --name b9_kill_campaign_seed1

The CI test (`tests/search_tests/test_kill_campaign.py`) runs the same campaign, smaller, with
the function executor.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from automl.lifetime import process_alive  # noqa: E402 - after the path is set
from benchmarks.common import children, cmdline  # noqa: E402


@dataclass
class Campaign:
    """What one campaign did and found.

    Attributes:
        seconds: wall time from the first start to the end of the last run.
        kills: what was killed, in order (`worker` or `scheduler`), with the moment.
        runs: `automl search` runs (1 + scheduler kills).
        finished: finished trials at the end.
        running: trials left RUNNING at the end.
        changed: trials finished before a kill whose state or value changed since.
        alive: processes of the search still alive at the end.
        resumed: trials that continued a killed trial mid-way, and the epochs they took over.
        failures: trials failed, by reason kind.
        exit_codes: of each run.
        killed_epochs: for each trial a kill failed, the epochs it had reported.
    """

    seconds: float = 0.0
    kills: list[tuple[float, str]] = field(default_factory=list)
    runs: int = 1
    finished: int = 0
    running: int = 0
    changed: list[int] = field(default_factory=list)
    alive: list[int] = field(default_factory=list)
    resumed: dict[int, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    exit_codes: list[int] = field(default_factory=list)
    killed_epochs: dict[int, int] = field(default_factory=dict)

    @property
    def epochs_saved(self) -> int:
        return sum(self.resumed.values())


def search_command(space: str | Path, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "automl", "search", str(space), *args]


def run_campaign(
    workdir: Path,
    command: Sequence[str],
    *,
    trials: int,
    kills: int,
    seed: int,
    gaps: tuple[float, float],
    env: Mapping[str, str] | None = None,
    study: str = "space",
    timeout: float = 1800.0,
) -> Campaign:
    """Run `command` in `workdir`, killing a worker or the scheduler `kills` times.

    Args:
        workdir: the folder the search runs in (its store: `runs/automl.db`).
        command: the `automl search` command line.
        trials: its `--trials` target.
        kills: how many `kill -9`s.
        seed: seeds the schedule (which process, when).
        gaps: seconds between kills are drawn uniformly from this range.
        env: extra environment of the search.
        study: the study name.
        timeout: seconds after which the campaign gives up.
    """
    rng = random.Random(seed)
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    result = Campaign()
    seen: set[int] = set()
    snapshot: dict[int, tuple[str, float | None]] = {}
    started = time.monotonic()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(command),
            cwd=workdir,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    scheduler = start()
    seen.add(scheduler.pid)
    while len(result.kills) < kills and scheduler.poll() is None:
        gap = rng.uniform(*gaps)
        target = rng.choice(("worker", "scheduler"))
        # The gap counts from when this run trains (a trial of its own is running), so kills
        # land during trials, not mostly in the start-up of a restarted scheduler.
        while not _runs_a_trial(workdir, study, scheduler.pid) and scheduler.poll() is None:
            time.sleep(0.1)
        moment = time.monotonic() + gap
        while time.monotonic() < moment and scheduler.poll() is None:
            seen.update(search_pids(scheduler.pid))
            time.sleep(0.05)
        if scheduler.poll() is not None:
            break  # the target was reached before every kill was spent
        workers = worker_pids(scheduler.pid)
        seen.update(search_pids(scheduler.pid))
        snapshot.update(_finished(workdir, study))
        if target == "worker" and workers:
            os.kill(rng.choice(sorted(workers)), signal.SIGKILL)
            result.kills.append((time.monotonic() - started, "worker"))
            continue
        scheduler.kill()
        scheduler.wait()
        result.exit_codes.append(scheduler.returncode)
        result.kills.append((time.monotonic() - started, "scheduler"))
        _wait_gone(workers, 10.0)  # workers notice and exit by themselves
        scheduler = start()
        seen.add(scheduler.pid)
        result.runs += 1
    while scheduler.poll() is None:
        seen.update(search_pids(scheduler.pid))
        if time.monotonic() - started > timeout:
            scheduler.kill()
            break
        time.sleep(0.1)
    _, err = scheduler.communicate()
    result.exit_codes.append(scheduler.returncode)
    result.seconds = time.monotonic() - started
    if scheduler.returncode != 0:
        raise RuntimeError(f"the last run exited {scheduler.returncode}: {err.decode()[-2000:]}")
    _wait_gone(seen, 10.0)
    result.alive = sorted(pid for pid in seen if process_alive(pid))
    _judge(workdir, study, snapshot, result)
    return result


def run_uninterrupted(workdir: Path, command: Sequence[str], env: Mapping[str, str]) -> float:
    """Wall seconds of the same search with no kill."""
    started = time.monotonic()
    subprocess.run(
        list(command),
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def _judge(
    workdir: Path,
    study: str,
    snapshot: Mapping[int, tuple[str, float | None]],
    result: Campaign,
) -> None:
    from automl.storage.attributes import RESULT, TrialOutcome
    from automl.storage.records import TrialState
    from automl.storage.store import StudyStore

    store = StudyStore(f"sqlite:///{workdir / 'runs' / 'automl.db'}")
    record = store.record(study)
    now = {t.number: (t.state.value, t.value) for t in record.trials}
    result.changed = sorted(n for n, before in snapshot.items() if now.get(n) != before)
    result.finished = record.finished
    result.running = record.counts()[TrialState.RUNNING]
    result.resumed = {
        t.number: t.resumed_epoch for t in record.trials if t.resumed_epoch is not None
    }
    kinds: dict[str, int] = {}
    for trial in store.load_study(study).get_trials(deepcopy=False):
        outcome = TrialOutcome.from_json(trial.user_attrs.get(RESULT))
        if outcome is not None and outcome.failure_kind is not None:
            kinds[outcome.failure_kind.value] = kinds.get(outcome.failure_kind.value, 0) + 1
            if outcome.failure_kind.value in ("died", "stale"):
                result.killed_epochs[trial.number] = len(trial.intermediate_values)
    result.failures = kinds


def _finished(workdir: Path, study: str) -> dict[int, tuple[str, float | None]]:
    """The finished trials now (read-only; nothing before the study exists)."""
    from automl.errors import AutoMLError
    from automl.storage.store import StudyStore

    try:
        record = StudyStore(f"sqlite:///{workdir / 'runs' / 'automl.db'}").record(study)
    except AutoMLError:
        return {}
    return {t.number: (t.state.value, t.value) for t in record.trials if t.state.finished}


def store_rows(workdir: Path, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
    """The rows of one read-only query of the search's SQLite store; none before it exists."""
    import sqlite3

    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{workdir / 'runs' / 'automl.db'}?mode=ro", uri=True)
        ) as db:
            return db.execute(sql, tuple(parameters)).fetchall()
    except sqlite3.Error:
        return []


def _runs_a_trial(workdir: Path, study: str, pid: int) -> bool:
    """Whether the scheduler `pid` has a trial running: one read-only SQLite query. (Through
    Optuna each look cost 0.11 s of CPU; ten a second took half a core from the search it
    waits for, on 2 cores.)"""
    import json

    from automl.storage import attributes as keys

    rows = store_rows(
        workdir,
        "SELECT a.value_json FROM trial_user_attributes a "
        "JOIN trials t ON t.trial_id = a.trial_id "
        "JOIN studies s ON s.study_id = t.study_id "
        "WHERE t.state = 'RUNNING' AND a.key = ? AND s.study_name = ?",
        (keys.LAUNCH, study),
    )
    for (value,) in rows:
        launch = keys.TrialLaunch.from_json(json.loads(value))
        if launch is not None and launch.owner.pid == pid:
            return True
    return False


def worker_pids(pid: int) -> set[int]:
    """Worker processes of a scheduler: its spawned children, or the children of the
    forkserver it started (not multiprocessing's resource tracker, nor the forkserver)."""
    workers = set()
    for child in children(pid):
        command = cmdline(child)
        if b"spawn_main" in command:
            workers.add(child)
        elif b"forkserver" in command:
            workers.update(children(child))
    return workers


def search_pids(pid: int) -> set[int]:
    """Every process under a scheduler (workers, forkserver, resource tracker, decoders)."""
    found, todo = set(), [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _wait_gone(pids: set[int] | Sequence[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(process_alive(p) for p in pids):
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--gaps", type=float, nargs=2, default=(4.0, 16.0))
    parser.add_argument("--space", default=str(REPO / "spaces" / "cnn.py"))
    # Trial-seeded random search draws the same configurations whatever the timing, so both
    # arms train the same models (TPE's depend on which trials finished first).
    parser.add_argument("--sampler", default="random")
    parser.add_argument("--name", default="b9_kill_campaign", help="result file name")
    args = parser.parse_args()
    from benchmarks.common import table, write_result

    flags = [
        "--trials", str(args.trials), "--workers", str(args.workers), "--epochs",
        str(args.epochs), "--seed", str(args.seed), "--sampler", args.sampler, "--no-retrain",
        "--quiet", "--study", "space",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as plain, tempfile.TemporaryDirectory() as killed:
        command = search_command(args.space, flags)
        baseline = run_uninterrupted(Path(plain), command, {})
        campaign = run_campaign(
            Path(killed),
            command,
            trials=args.trials,
            kills=args.kills,
            seed=args.seed,
            gaps=tuple(args.gaps),  # type: ignore[arg-type]
        )
    ratio = campaign.seconds / baseline
    rows = [
        ("uninterrupted", f"{baseline:.0f}", "-", "-", "-"),
        (
            "kill campaign",
            f"{campaign.seconds:.0f}",
            f"{len(campaign.kills)} ({sum(k == 'scheduler' for _, k in campaign.kills)} scheduler)",
            f"{len(campaign.resumed)} trials, {campaign.epochs_saved} epochs",
            f"{ratio:.2f}x",
        ),
    ]
    print(table(rows, ["search", "wall s", "kills", "resumed mid-way", "ratio"]))
    checks = {
        "finished == target": campaign.finished == args.trials,
        "nothing RUNNING": campaign.running == 0,
        "finished trials unchanged": not campaign.changed,
        "no process left": not campaign.alive,
    }
    for name, ok in checks.items():
        print(f"{name}: {'yes' if ok else 'NO'}")
    print(f"failures by kind: {campaign.failures}; runs: {campaign.runs}")
    print(f"epochs reported by each killed trial: {campaign.killed_epochs}")
    print(f"resumed trials (epochs taken over): {campaign.resumed}")
    data: dict[str, Any] = {
        "settings": vars(args) | {"gaps": list(args.gaps)},
        "uninterrupted_seconds": baseline,
        "campaign_seconds": campaign.seconds,
        "ratio": ratio,
        "kills": campaign.kills,
        "runs": campaign.runs,
        "resumed": campaign.resumed,
        "epochs_saved": campaign.epochs_saved,
        "killed_epochs": campaign.killed_epochs,
        "failures": campaign.failures,
        "checks": checks,
        "exit_codes": campaign.exit_codes,
    }
    write_result(args.name, data)


if __name__ == "__main__":
    main()
