"""Several hosts on one PostgreSQL study, simulated on this machine: schedulers with different
host identities (`AUTOML_HOST`), each with its own workers, one shared artifact folder.

A study-wide `--trials`, no trial run twice, the study-wide best checkpoints kept, a `kill -9`d
host's trials failed and re-run by the other after the grace period, `automl worker`, and
readers never blocked. CI starts a real PostgreSQL server (AUTOML_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from automl.cli import main
from automl.storage.records import TrialRecord, TrialState, rank_key
from automl.storage.store import StudyStore

from ..conftest import NO_POSTGRES, REPO, postgres_url

URL = postgres_url()
pytestmark = pytest.mark.skipif(URL is None, reason=NO_POSTGRES)
KEEP = 3


@pytest.fixture
def study(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AUTOML_ARTIFACTS", str(workdir / "shared"))
    yield f"hosts-{uuid.uuid4().hex[:10]}"


def host(
    workdir: Path,
    study: str,
    name: str,
    *,
    trials: int,
    command: str = "search",
    epochs: int = 3,
    **env: str,
) -> subprocess.Popen[bytes]:
    """One simulated host: `automl search` (or `worker`) with its own host identity."""
    assert URL is not None
    args = [
        sys.executable, "-m", "automl", command, "space.py", "--storage", URL, "--study", study,
        "--trials", str(trials), "--workers", "2", "--epochs", str(epochs), "--pruner", "none",
        "--sampler", "random", "--executor", "function", "--heartbeat", "1",
        "--keep-checkpoints", str(KEEP), "--quiet",
    ]  # fmt: skip
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AUTOML_HOST": name,
        "AUTOML_ARTIFACTS": str(workdir / "shared"),
        "AUTOML_TEST_LOG": str(workdir / "trials.log"),
        "AUTOML_TEST_DELAY": "0.05",
        **env,
    }
    return subprocess.Popen(
        args, cwd=workdir, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def finish(process: subprocess.Popen[bytes], timeout: float = 150.0) -> str:
    out, _ = process.communicate(timeout=timeout)
    text = out.decode(errors="replace")
    assert process.returncode == 0, text
    return text


def record(study: str) -> list[TrialRecord]:
    assert URL is not None
    return list(StudyStore(URL).record(study).trials)


def trials_and_hosts(study: str) -> tuple[list[TrialRecord], dict[int, str | None]]:
    """The study's trials and the host that launched each, read in that order: a host may ask
    for a trial between the two reads, and every trial of the first read is in the second
    (None where it has no launch yet), so every trial read has an entry in the hosts."""
    trials = record(study)
    return trials, hosts_of(study)


def executions(workdir: Path) -> int:
    log = workdir / "trials.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def best_k(trials: list[TrialRecord]) -> set[int]:
    complete = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None]
    complete.sort(
        key=lambda t: rank_key(
            "maximize",
            t.value or 0.0,
            t.epochs_run,
            t.params_count,
            t.number,
            tiebreak=t.best_val_loss,
        )
    )
    return {t.number for t in complete[:KEEP]}


def checkpoints(workdir: Path, study: str) -> set[int]:
    folder = workdir / "shared" / study / "checkpoints"
    return {int(p.stem.removeprefix("trial-")) for p in folder.glob("trial-*.keras")}


READER = """
import contextlib, io, json, sys, time
from pathlib import Path
from automl.cli import main
from automl.storage.store import StudyStore
url, study, stop, out = sys.argv[1:]
times = {"record": [], "show": []}
errors = []
while not Path(stop).exists():
    for what in ("record", "show"):
        if what == "show" and not times["record"]:
            continue  # the study does not exist yet
        started = time.monotonic()
        try:
            if what == "record":
                StudyStore(url).record(study)
            else:
                with contextlib.redirect_stdout(io.StringIO()):
                    if main(["show", study, "--storage", url]) != 0:
                        raise RuntimeError("automl show failed")
        except Exception as exc:  # nothing there yet: no store, or no study
            if "no study named" not in str(exc) and "no study store" not in str(exc):
                errors.append(repr(exc))
            continue
        times[what].append(time.monotonic() - started)
    time.sleep(0.05)
Path(out).write_text(json.dumps({"times": times, "errors": errors}))
"""


def reader(workdir: Path, study: str) -> subprocess.Popen[bytes]:
    """A third process reading the study the whole time, as `automl show` and the report
    read it, timing each read; it stops when `stop` appears."""
    assert URL is not None
    return subprocess.Popen(
        [sys.executable, "-c", READER, URL, study, str(workdir / "stop"), str(workdir / "reads")],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_two_hosts_share_one_study_to_its_trials_total(
    workdir: Path, study: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert URL is not None
    third = reader(workdir, study)
    try:
        a = host(workdir, study, "host-a", trials=40)
        b = host(workdir, study, "host-b", trials=40)
        out_a, out_b = finish(a), finish(b)
    finally:  # the reader stops whatever happens: no process outlives the test
        (workdir / "stop").touch()
        try:
            third.wait(timeout=30)
        except subprocess.TimeoutExpired:
            third.kill()
    trials = record(study)
    finished = [t for t in trials if t.state.finished]
    # The study-wide total: 40, plus at most the trials other slots had started meanwhile.
    assert 40 <= len(finished) <= 40 + 3, len(finished)
    assert not [t for t in trials if t.state is TrialState.RUNNING]
    # No trial ran twice: one execution per trial that started.
    assert executions(workdir) == len([t for t in trials if t.state is not TrialState.WAITING])
    runs = StudyStore(URL).record(study).runs
    assert sorted(r.owner.host for r in runs if r.owner) == ["host-a", "host-b"]
    ran = hosts_of(study)
    assert {ran[t.number] for t in finished} == {"host-a", "host-b"}  # both hosts ran trials
    # Retention: exactly the study-wide best K checkpoints are kept, whichever host ran them.
    assert checkpoints(workdir, study) == best_k(trials)
    # One host retrains and reports; the other says who does.
    texts = out_a + out_b
    assert texts.count("done once per study") == 1, texts
    reads = json.loads((workdir / "reads").read_text())
    assert reads["errors"] == []
    for what, times in reads["times"].items():  # the first of each imports its modules
        assert len(times) > 3, reads
        assert max(times[1:]) < 1.0, (what, times)  # never blocked by the writers
    assert main(["report", study, "--storage", URL, "-o", str(workdir / "r.html")]) == 0
    capsys.readouterr()


def test_a_killed_host_s_trials_are_rerun_by_the_other_after_the_grace_period(
    workdir: Path, study: str
) -> None:
    a = host(workdir, study, "host-a", trials=24, epochs=6, AUTOML_TEST_DELAY="0.3")
    b = host(workdir, study, "host-b", trials=24, epochs=6, AUTOML_TEST_DELAY="0.3")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # host A runs trials, one mid-way, and some finished
        trials, ran = trials_and_hosts(study) if _exists(study) else ([], {})
        mine = [t for t in trials if t.state is TrialState.RUNNING and ran[t.number] == "host-a"]
        if any(t.intermediate for t in mine) and sum(t.state.finished for t in trials) >= 4:
            break
        time.sleep(0.2)
    else:
        pytest.fail("host A never ran a trial")
    before = {t.number: (t.state, t.value) for t in record(study) if t.state.finished}
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    trials, ran = trials_and_hosts(study)
    killed = [
        t.number for t in trials if t.state is TrialState.RUNNING and ran[t.number] == "host-a"
    ]
    assert killed
    finish(b, timeout=170)
    trials, ran = trials_and_hosts(study)
    after = {t.number: (t.state, t.value) for t in trials}
    assert all(after[n] == was for n, was in before.items())  # nothing finished is lost
    assert sum(t.state.finished for t in trials) >= 24
    assert not [t for t in trials if t.state is TrialState.RUNNING]
    for number in killed:  # failed for the missing heartbeat, and re-run by host B
        assert after[number][0] is TrialState.FAILED
        assert "heartbeat" in (trials[number].failure or "")
        retries = [t for t in trials if t.retry_of == number]
        assert len(retries) == 1 and retries[0].state.finished
        assert ran[retries[0].number] == "host-b"
    # A killed trial that had saved epochs continued after them on host B (the shared folder
    # holds its resume point), its earlier reports carried over.
    resumed = [t for t in trials if t.retry_of in killed and t.resumed_epoch]
    assert resumed, [(t.number, t.retry_of, t.resumed_epoch) for t in trials if t.retry_of]
    assert all(min(t.intermediate) == 1 for t in resumed)


def test_automl_worker_joins_but_never_creates_retrains_or_reports(
    workdir: Path, study: str
) -> None:
    assert URL is not None
    early = host(workdir, study, "host-w", trials=12, command="worker")
    text = early.communicate(timeout=60)[0].decode()
    assert early.returncode == 2 and "no study" in text and "automl search" in text, text
    a = host(workdir, study, "host-a", trials=12)
    deadline = time.monotonic() + 60
    while not _exists(study) and time.monotonic() < deadline:
        time.sleep(0.2)
    w = host(workdir, study, "host-w", trials=12, command="worker")
    out_w, out_a = finish(w), finish(a)
    assert "done once per study" not in out_a and "Report:" in out_a
    assert "Report:" not in out_w and "retrain" not in out_w.lower()
    runs = StudyStore(URL).record(study).runs
    assert {(r.owner.host if r.owner else "", r.role) for r in runs} == {
        ("host-a", "search"),
        ("host-w", "worker"),
    }


def test_automl_worker_on_sqlite_is_refused_with_the_fix(workdir: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "automl", "worker", "space.py", "--executor", "function"],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert process.returncode == 2
    assert "postgresql" in process.stderr and len(process.stderr.strip().splitlines()) == 1


def _exists(study: str) -> bool:
    assert URL is not None
    return study in StudyStore(URL).study_names()


def hosts_of(study: str) -> dict[int, str | None]:
    """The host that launched each trial (None: not launched yet)."""
    from automl.storage import attributes as keys

    assert URL is not None
    found = {}
    for trial in StudyStore(URL).load_study(study).get_trials(deepcopy=False):
        launch = keys.TrialLaunch.from_json(trial.user_attrs.get(keys.LAUNCH))
        found[trial.number] = launch.owner.host if launch else None
    return found
