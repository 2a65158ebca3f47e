"""Finding the accelerators a search can use, without importing TensorFlow.

Discovery asks `nvidia-smi` (and honours `CUDA_VISIBLE_DEVICES`), so the scheduler and
`automl env` learn the GPUs in milliseconds. It is injectable: tests pass a fake probe that
simulates 1, 2 or 4 GPUs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    """One visible GPU: its index as CUDA_VISIBLE_DEVICES names it, its model and memory."""

    index: int
    name: str
    memory_mib: int | None = None


GpuProbe = Callable[[], list[Gpu]]


def discover_gpus(
    env: Mapping[str, str] | None = None,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> list[Gpu]:
    """The GPUs `nvidia-smi` reports, filtered by `CUDA_VISIBLE_DEVICES` when it is set.

    Args:
        env: the environment to read `CUDA_VISIBLE_DEVICES` from. Defaults to `os.environ`.
        run: runs the `nvidia-smi` command (injectable for tests). Defaults to `subprocess.run`.
    """
    env = os.environ if env is None else env
    if shutil.which("nvidia-smi") is None and run is subprocess.run:
        return []
    try:
        result = run(
            ["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if result.returncode != 0:
        return []
    gpus = []
    for line in result.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        memory = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
        gpus.append(Gpu(index=int(parts[0]), name=parts[1], memory_mib=memory))
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return gpus
    wanted = [v.strip() for v in visible.split(",") if v.strip()]
    if not wanted or wanted == ["-1"]:
        return []
    by_index = {str(g.index): g for g in gpus}
    return [by_index[w] for w in wanted if w in by_index]


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
