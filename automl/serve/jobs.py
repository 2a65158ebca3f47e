"""Jobs: searches, retraining and exports started from the service, as child processes.

Each job runs the same `automl` command a user would type (`search`, `retrain`, `export`), with
the server's store in `AUTOML_STORAGE` (never on the command line) and its output in a log file.
Stopping a job sends SIGINT, as Ctrl-C would: a search records its running trials and re-queues
them, so the study resumes from the CLI or the page. The children watch the server
(`AUTOML_STOP_WITH_PARENT`) and stop the same way when it dies, even by `kill -9`: no orphan.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

LOG_TAIL = 64 * 1024  # bytes of a job's log the API returns


@dataclass
class Job:
    """One child process of the server."""

    id: int
    kind: str  # search, retrain, export
    study: str
    command: list[str]
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    started: float = field(default_factory=time.time)
    stop_requested: bool = False

    @property
    def state(self) -> str:
        code = self.process.poll()
        if code is None:
            return "stopping" if self.stop_requested else "running"
        if code == 0:
            return "finished"
        return "stopped" if self.stop_requested or code == 130 else "failed"

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "study": self.study,
            "state": self.state,
            "exit_code": self.process.poll(),
            "started": self.started,
            "command": " ".join(self.command[2:]),  # from `automl …`: no interpreter path
        }

    def log_tail(self) -> str:
        try:
            with open(self.log, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - LOG_TAIL))
                return handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""


class JobManager:
    """Starts, lists and stops the server's jobs.

    Args:
        storage: the store URL the jobs use (passed in the environment).
        folder: where job logs go.
        cwd: the jobs' working folder (the server's).
    """

    def __init__(self, storage: str, folder: Path, cwd: Path | None = None) -> None:
        self.storage = storage
        self.folder = folder
        self.cwd = cwd or Path.cwd()
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, kind: str, study: str, arguments: list[str]) -> Job:
        """Run `automl <arguments>` as a job (call it from the server's main thread)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            number = next(self._ids)
        log = self.folder / f"job-{os.getpid()}-{number}-{kind}.log"
        command = [sys.executable, "-m", "automl", *arguments]
        environment = {
            **os.environ,
            "AUTOML_STORAGE": self.storage,
            "AUTOML_STOP_WITH_PARENT": str(os.getpid()),
            "PYTHONUNBUFFERED": "1",
        }
        with open(log, "wb") as handle:
            process = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        job = Job(number, kind, study, command, log, process)
        with self._lock:
            self.jobs[number] = job
        return job

    def stop(self, job: Job) -> None:
        """Ctrl-C for the job: running trials are recorded and re-queued."""
        if job.process.poll() is None:
            job.stop_requested = True
            job.process.send_signal(signal.SIGINT)

    def running(self, study: str | None = None) -> list[Job]:
        return [
            j
            for j in self.jobs.values()
            if j.process.poll() is None and (study is None or j.study == study)
        ]

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every job and wait for them (the server is stopping)."""
        for job in self.running():
            self.stop(job)
        deadline = time.monotonic() + timeout
        for job in self.jobs.values():
            try:
                job.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                job.process.kill()
                job.process.wait()
