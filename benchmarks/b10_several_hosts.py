"""B10 — several hosts on one PostgreSQL study: trials per hour with 1 host vs 2 hosts.

Each "host" is an `automl search` process with its own host identity (`AUTOML_HOST`) pinned to
its own CPU core (`taskset`), with one worker, as a one-core machine would be; the two-host arm
runs two of them at once on one study in a real PostgreSQL database, with a shared artifact
folder. Both arms search `spaces/cnn.py` on digits with the trial-seeded random sampler (so the
same configurations), no pruning and a fixed epoch count, to the same study-wide `--trials`.
Wall time counts from the first start to the last exit (start-up, the election, the report).

    AUTOML_BENCH_POSTGRES_URL=postgresql://user:pw@host/db \\
        python benchmarks/b10_several_hosts.py [--trials 24] [--epochs 3]

(`AUTOML_TEST_POSTGRES_URL`, which CI sets, is used when the first is not set.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import table, write_result  # noqa: E402 - after the path is set


def run_hosts(url: str, hosts: int, *, trials: int, epochs: int, workdir: Path) -> dict[str, Any]:
    """Run `hosts` one-core hosts on one new study to `trials`; wall time and counts."""
    from automl.storage.records import TrialState
    from automl.storage.store import StudyStore

    study = f"b10-{hosts}h-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, "-m", "automl", "search", str(REPO / "spaces" / "cnn.py"),
        "--storage", url, "--study", study, "--trials", str(trials), "--epochs", str(epochs),
        "--workers", "1", "--sampler", "random", "--pruner", "none", "--patience", "0",
        "--seed", "0", "--no-retrain", "--quiet",
    ]  # fmt: skip
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            ["taskset", "-c", str(index % (os.cpu_count() or 1)), *command],
            cwd=workdir,
            env={
                **os.environ,
                "PYTHONPATH": str(REPO),
                "AUTOML_HOST": f"bench-host-{index}",
                "AUTOML_ARTIFACTS": str(workdir / "shared"),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for index in range(hosts)
    ]
    outputs = [p.communicate()[0].decode(errors="replace") for p in processes]
    seconds = time.monotonic() - started
    for process, output in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"a host exited {process.returncode}:\n{output[-3000:]}")
    record = StudyStore(url).record(study)
    per_host: dict[str, int] = {}
    optuna_study = StudyStore(url).load_study(study)
    from automl.storage import attributes as keys

    for trial in optuna_study.get_trials(deepcopy=False):
        launch = keys.TrialLaunch.from_json(trial.user_attrs.get(keys.LAUNCH))
        if launch is not None and trial.state.is_finished():
            per_host[launch.owner.host] = per_host.get(launch.owner.host, 0) + 1
    finished = record.finished
    ran = [t for t in record.trials if t.started is not None and t.completed is not None]
    window = (max(t.completed for t in ran) - min(t.started for t in ran)).total_seconds()
    return {
        "hosts": hosts,
        "seconds": seconds,
        "finished": finished,
        "failed": record.counts()[TrialState.FAILED],
        "trials_per_hour": finished / seconds * 3600,
        # From the first trial's start to the last one's end: start-up and report excluded.
        "training_seconds": window,
        "trials_per_hour_training": finished / window * 3600,
        "trials_by_host": per_host,
        "best": record.best().value if record.best() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--name", default="b10_several_hosts")
    args = parser.parse_args()
    url = os.environ.get("AUTOML_BENCH_POSTGRES_URL") or os.environ.get("AUTOML_TEST_POSTGRES_URL")
    if not url:
        sys.exit("set AUTOML_BENCH_POSTGRES_URL to a PostgreSQL database (see the docstring)")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for hosts in (1, 2):
            workdir = Path(folder) / f"{hosts}h"
            workdir.mkdir()
            result = run_hosts(url, hosts, trials=args.trials, epochs=args.epochs, workdir=workdir)
            results.append(result)
            print(
                f"{hosts} host(s): {result['seconds']:.0f} s, {result['finished']} finished, "
                f"{result['trials_per_hour']:.0f} trials/hour, by host {result['trials_by_host']}",
                flush=True,
            )
    ratio = results[1]["trials_per_hour"] / results[0]["trials_per_hour"]
    training_ratio = results[1]["trials_per_hour_training"] / results[0]["trials_per_hour_training"]
    rows = [
        [
            r["hosts"],
            f"{r['seconds']:.0f}",
            r["finished"],
            f"{r['trials_per_hour']:.0f}",
            f"{r['training_seconds']:.0f}",
            f"{r['trials_per_hour_training']:.0f}",
        ]
        for r in results
    ]
    print(
        table(
            rows,
            ["hosts", "wall s", "finished", "trials/hour", "training s", "trials/hour training"],
        )
    )
    print(
        f"2 hosts / 1 host: {ratio:.2f}x from start to exit, {training_ratio:.2f}x from the "
        "first trial's start to the last one's end (goal >= 1.8x)"
    )
    write_result(
        args.name,
        {
            "settings": vars(args),
            "results": results,
            "ratio": ratio,
            "training_ratio": training_ratio,
        },
    )


if __name__ == "__main__":
    main()
