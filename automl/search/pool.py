"""The worker pool: starts one process per slot, relays messages, replaces the dead.

On Linux workers are forked from a server process that has imported TensorFlow once
(multiprocessing's forkserver, preloading `automl.search.preload`), which `warm_up` starts
before the scheduler loads the data: a worker then starts in a fraction of a second instead of
3–4 s of CPU, at the start and at every replacement. Elsewhere (or with
`AUTOML_WORKER_START=spawn`) each worker is a fresh spawned interpreter that imports it.
Either way a worker gets the scheduler's current environment, working folder and `sys.path`,
then its slot's settings.

The scheduler's loop sees only the `Pool` protocol (start, wait, replace, stop, and each
worker's `WorkerHandle`), so its handling of every message and every death is unit-tested with a
fake pool; `WorkerPool` is the real one. Slots come from `plan_slots`: one per visible GPU by
default (`CUDA_VISIBLE_DEVICES`, memory growth), K per GPU with `--trials-per-gpu K`, or N CPU
workers that split the cores.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait
from typing import Any, Protocol

from automl.errors import UsageError
from automl.lifetime import main_module_hidden
from automl.search.devices import Gpu
from automl.search.messages import FromWorker, Ready, Stop, ToWorker, WorkerDied
from automl.search.worker import Slot, WorkerSetup, worker_main

DEFAULT_MAX_CPU_WORKERS = 8
# What the forkserver imports once: TensorFlow for the executors that train (not for the
# function executor, whose workers never import it).
_PRELOAD = ["automl.search.preload"]
_PRELOAD_WITHOUT_TENSORFLOW = ["automl.search.worker"]


def worker_context(executor: str) -> Any:
    """The multiprocessing context workers start in: forkserver on Linux, else spawn."""
    if (
        sys.platform.startswith("linux")
        and "forkserver" in multiprocessing.get_all_start_methods()
        and os.environ.get("AUTOML_WORKER_START", "forkserver") != "spawn"
    ):
        context = multiprocessing.get_context("forkserver")
        # Only read when the server starts: the first search of a process decides it.
        context.set_forkserver_preload(
            _PRELOAD_WITHOUT_TENSORFLOW if executor == "function" else _PRELOAD
        )
        return context
    return multiprocessing.get_context("spawn")


def warm_up(executor: str) -> None:
    """Start the server workers are forked from now, so that its TensorFlow import overlaps
    what the scheduler does before the first worker (loading the data, opening the store)."""
    context = worker_context(executor)
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        with main_module_hidden():
            forkserver.ensure_running()


def plan_slots(
    gpus: Sequence[Gpu],
    *,
    cpus: int,
    workers: int | None = None,
    gpu_ids: Sequence[int] | None = None,
    trials_per_gpu: int = 1,
) -> list[Slot]:
    """Where workers run.

    Args:
        gpus: the visible GPUs (from `discover_gpus`, or simulated in tests).
        cpus: usable CPU cores, divided between workers.
        workers: CPU workers when there is no GPU (or `--gpus` is empty). Defaults to one per
            usable core, up to 8.
        gpu_ids: the GPUs to use (`--gpus 0,1`); None for all visible ones.
        trials_per_gpu: trials packed on each GPU. Defaults to `1`.

    Raises:
        UsageError: `--gpus` names an absent GPU, or `--workers` exceeds the usable cores.
    """
    if trials_per_gpu < 1:
        raise UsageError(f"--trials-per-gpu must be at least 1, got {trials_per_gpu}.")
    present = {gpu.index: gpu for gpu in gpus}
    if gpu_ids is not None:
        absent = [i for i in gpu_ids if i not in present]
        if absent:
            shown = ", ".join(str(i) for i in sorted(present)) or "none"
            raise UsageError(
                f"--gpus names GPU {', '.join(map(str, absent))}, which is not visible "
                f"(visible: {shown}); check nvidia-smi and CUDA_VISIBLE_DEVICES."
            )
        chosen = [present[i] for i in gpu_ids]
    else:
        chosen = list(gpus)
    if chosen:
        if workers is not None and workers != len(chosen) * trials_per_gpu:
            raise UsageError(
                f"--workers {workers} does not fit {len(chosen)} GPU(s) × --trials-per-gpu "
                f"{trials_per_gpu}; leave --workers out on GPUs, or pass --gpus '' for CPU."
            )
        count = len(chosen) * trials_per_gpu
        threads = max(1, cpus // count)
        slots = []
        for gpu in chosen:
            for k in range(trials_per_gpu):
                name = f"gpu{gpu.index}" + (f".{k}" if trials_per_gpu > 1 else "")
                slots.append(Slot(name, _gpu_env(gpu.index, threads), threads))
        return slots
    # Default: one worker per core (up to 8). Trials of small models are bound by Python-side
    # graph tracing, which one process cannot parallelise: on 2 cores, 2 single-threaded
    # workers ran 1.99x the trials per hour of 1 two-threaded worker (benchmarks/b4_workers.py).
    count = workers or min(cpus, DEFAULT_MAX_CPU_WORKERS)
    if count > cpus:
        raise UsageError(
            f"--workers {count} is more than the {cpus} usable CPU core(s); each worker needs "
            f"at least one core: use --workers {cpus} or fewer."
        )
    threads = max(1, cpus // count)
    return [Slot(f"cpu{i}", _cpu_env(threads), threads) for i in range(count)]


def _gpu_env(index: int, threads: int) -> dict[str, str]:
    return {
        "CUDA_VISIBLE_DEVICES": str(index),
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        **_thread_env(threads),
    }


def _cpu_env(threads: int) -> dict[str, str]:
    return {"CUDA_VISIBLE_DEVICES": "-1", **_thread_env(threads)}


def _thread_env(threads: int) -> dict[str, str]:
    return {
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(min(2, threads)),
        "OMP_NUM_THREADS": str(threads),
    }


class Link(Protocol):
    """The scheduler's end of a worker's pipe (a `multiprocessing` connection, or a fake)."""

    def send(self, obj: Any) -> None: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class WorkerHandle:
    """The scheduler's view of one worker: its slot, its pipe, and what it is doing.

    Attributes:
        slot: where it runs.
        link: the scheduler's end of its pipe.
        process: its process (None for a fake).
        ready: it has sent `Ready`.
        ready_info: that message.
        trial: the number of the trial it runs, or None when idle.
        trials_run: trials it has finished.
        first_rss: its resident memory (MiB) after its first trial.
        last_rss: after its latest trial.
    """

    slot: Slot
    link: Link
    process: Any = None
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    ready_info: Ready | None = None
    trial: int | None = None
    trials_run: int = 0
    first_rss: float | None = None
    last_rss: float | None = None

    @property
    def pid(self) -> int:
        return int(getattr(self.process, "pid", 0) or 0)

    def send(self, message: ToWorker) -> None:
        """Send to the worker; if it has died, drop the message.

        A worker can die with its last message still unread (killed just after reporting an
        epoch, asking for a value or finishing a trial); the reply then meets a closed pipe.
        Its death is not lost: the pool's next `wait` reads the end of the pipe and yields
        `WorkerDied`, which fails and retries its trial and starts a new worker.
        """
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.link.send(message)


class Pool(Protocol):
    """What the scheduler's loop needs of a pool of workers."""

    @property
    def workers(self) -> Sequence[WorkerHandle]:
        """One handle per slot, in slot order (a replaced worker takes its slot's place)."""
        ...

    def start(self) -> None:
        """Start one worker per slot."""

    def wait(self, timeout: float) -> list[tuple[WorkerHandle, FromWorker]]:
        """The messages that arrived within `timeout` seconds; a dead worker's pipe ends with
        `WorkerDied`."""
        ...

    def replace(self, handle: WorkerHandle) -> WorkerHandle:
        """Stop a worker (if alive) and start a fresh one on its slot."""
        ...

    def stop(self) -> None:
        """Stop every worker."""


class WorkerPool:
    """Worker processes, one per slot, restarted on demand.

    Args:
        slots: where workers run.
        setup: what each worker loads.
    """

    def __init__(self, slots: Sequence[Slot], setup: WorkerSetup) -> None:
        self._context = worker_context(setup.executor)
        self._setup = setup
        self.workers: list[WorkerHandle] = []
        self._slots = list(slots)

    def start(self) -> None:
        for index, slot in enumerate(self._slots):
            self.workers.append(self._spawn(slot, preflight=self._setup.preflight and index == 0))

    def _spawn(self, slot: Slot, *, preflight: bool = False) -> WorkerHandle:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(
                child,
                slot,
                replace(self._setup, preflight=preflight),
                os.getpid(),
                dict(os.environ),
            ),
            name=f"automl-worker-{slot.name}",
            daemon=True,
        )
        with main_module_hidden():
            process.start()
        child.close()
        return WorkerHandle(slot=slot, link=parent, process=process)

    def replace(self, handle: WorkerHandle) -> WorkerHandle:
        """Stop a worker (if alive) and start a fresh one on its slot."""
        self._terminate(handle)
        fresh = self._spawn(handle.slot)
        self.workers[self.workers.index(handle)] = fresh
        return fresh

    def wait(self, timeout: float) -> list[tuple[WorkerHandle, FromWorker]]:
        """Messages that arrived within `timeout` seconds; a dead worker yields `WorkerDied`."""
        by_link = {id(h.link): h for h in self.workers}
        ready = wait([h.link for h in self.workers], timeout=timeout)  # type: ignore[misc]
        messages: list[tuple[WorkerHandle, FromWorker]] = []
        for link in ready:
            handle = by_link[id(link)]
            try:
                message: FromWorker = handle.link.recv()  # type: ignore[attr-defined]
                messages.append((handle, message))
            except (EOFError, OSError):
                handle.process.join(timeout=2)
                messages.append((handle, WorkerDied(handle.process.exitcode)))
        return messages

    def stop(self, timeout: float = 5.0) -> None:
        """Ask every worker to stop, then terminate and kill what is left."""
        for handle in self.workers:
            with contextlib.suppress(OSError, ValueError):
                handle.send(Stop())
        deadline = time.monotonic() + timeout
        for handle in self.workers:
            if handle.trial is None:
                handle.process.join(timeout=max(0.0, deadline - time.monotonic()))
        for handle in self.workers:
            self._terminate(handle)

    @staticmethod
    def _terminate(handle: WorkerHandle) -> None:
        process = handle.process
        if process.is_alive():
            process.terminate()
            process.join(timeout=3)
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
            process.join(timeout=3)
        with contextlib.suppress(OSError):
            handle.link.close()


def describe_exit(code: int | None) -> str:
    """`exit code 1`, `signal 9 (SIGKILL)`, …"""
    if code is None:
        return "an unknown exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "signal"
        return f"signal {-code} ({name})"
    return f"exit code {code}"
