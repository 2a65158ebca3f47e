"""B9's two start-up costs, measured alone: how soon a killed worker's slot trains again, and
how soon a restarted scheduler runs its first trial.

- worker: a digits search of `spaces/cnn.py` (2 workers, no pruning, 9 epochs); every 8 s a
  worker is killed (`kill -9`), then the store is polled until two trials run again.
- scheduler: the same search is started, stopped with `kill -9` once two more trials have
  finished, and started again; each start is timed until its own first trial runs.

Compare the two ways workers start by running it twice:

    python benchmarks/b9_restart_latency.py                          # forked (Linux default)
    AUTOML_WORKER_START=spawn python benchmarks/b9_restart_latency.py
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.b9_kill_campaign import _runs_a_trial, store_rows, worker_pids  # noqa: E402

STUDY = "space"


def _command(trials: int) -> list[str]:
    return [
        sys.executable, "-m", "automl", "search", str(REPO / "spaces" / "cnn.py"),
        "--trials", str(trials), "--workers", "2", "--epochs", "9", "--no-retrain", "--quiet",
        "--study", STUDY, "--sampler", "random", "--seed", "1",
    ]  # fmt: skip


def _count(workdir: Path, states: tuple[str, ...]) -> int:
    marks = ",".join("?" * len(states))
    rows = store_rows(workdir, f"SELECT count(*) FROM trials WHERE state IN ({marks})", states)
    return int(rows[0][0]) if rows else 0


def _wait(predicate: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not predicate():  # type: ignore[operator]
        time.sleep(0.02)


def worker_replacement(workdir: Path, kills: int) -> list[float]:
    """Seconds from each worker kill until two trials run again."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    search = subprocess.Popen(
        [*_command(60), "--pruner", "none"], cwd=workdir, env=env, stdout=subprocess.DEVNULL
    )
    seconds = []
    try:
        for _ in range(kills):
            time.sleep(8)
            workers = sorted(worker_pids(search.pid))
            if not workers:
                break
            killed = time.monotonic()
            os.kill(workers[0], signal.SIGKILL)
            _wait(lambda w=set(workers): worker_pids(search.pid) - w, 60)
            _wait(lambda: _count(workdir, ("RUNNING",)) >= 2, 60)
            seconds.append(round(time.monotonic() - killed, 2))
    finally:
        search.kill()
        search.wait()
    return seconds


def scheduler_restart(workdir: Path, restarts: int) -> list[float]:
    """Seconds from each start of the search (the first, then after each kill -9) until it
    runs a trial of its own."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    seconds = []
    for _ in range(restarts + 1):
        started = time.monotonic()
        search = subprocess.Popen(_command(60), cwd=workdir, env=env, stdout=subprocess.DEVNULL)
        _wait(lambda s=search: _runs_a_trial(workdir, STUDY, s.pid), 60)
        seconds.append(round(time.monotonic() - started, 2))
        done = _count(workdir, ("COMPLETE", "PRUNED"))
        _wait(lambda d=done: _count(workdir, ("COMPLETE", "PRUNED")) >= d + 2, 90)
        search.kill()
        search.wait()
        time.sleep(1)  # its workers go with it
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--restarts", type=int, default=3)
    args = parser.parse_args()
    mode = os.environ.get("AUTOML_WORKER_START", "forkserver (default)")
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        replaced = worker_replacement(Path(one), args.kills)
        restarted = scheduler_restart(Path(two), args.restarts)
    print(f"workers started by: {mode}")
    print(f"worker killed → two trials running again, s: {replaced}")
    print(f"scheduler started → its first trial running, s: {restarted} (first = cold start)")


if __name__ == "__main__":
    main()
