"""Importing TensorFlow once, quietly, with this process's thread and device settings.

TensorFlow's C++ start-up writes several lines to the stderr file descriptor before any Python
logging exists (and `TF_CPP_MIN_LOG_LEVEL` no longer silences them), so the import runs with
descriptor 2 pointed at a temporary file; the text is shown only if the import fails or
`automl --debug` turned on debug logging.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

_ready = False


def import_tensorflow(
    *, threads: int | None = None, memory_growth: bool = True, deterministic: bool = False
) -> Any:
    """Import TensorFlow and Keras (once) and return the `tensorflow` module.

    Args:
        threads: intra-op threads for this process (workers split the CPUs); `None` leaves
            TensorFlow's default. Defaults to `None`.
        memory_growth: let each visible GPU's memory grow instead of taking it all, so several
            trials can share a GPU. Defaults to `True`.
        deterministic: TensorFlow op determinism (`enable_op_determinism`: the same inputs and
            seed give the same results, `tf.data` included), with inter-op threads fixed at
            one. A trial is then reproduced exactly on the same hardware and thread count.
            Defaults to `False`.
    """
    global _ready
    if _ready:
        if deterministic:  # (thread counts cannot change once TensorFlow has started)
            sys.modules["tensorflow"].config.experimental.enable_op_determinism()
        return sys.modules["tensorflow"]
    debug = logging.getLogger("automl").isEnabledFor(logging.DEBUG)
    preload_tensorflow()
    with quiet_stderr(enabled=not debug):
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(
                1 if deterministic else max(1, min(2, threads))
            )
        elif deterministic:
            tf.config.threading.set_inter_op_parallelism_threads(1)
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        for gpu in tf.config.list_physical_devices("GPU"):
            if memory_growth:
                tf.config.experimental.set_memory_growth(gpu, True)
    tf.get_logger().setLevel("ERROR")
    _ready = True
    return tf


def preload_tensorflow() -> None:
    """Import TensorFlow and Keras quietly, with the memory settings, and configure nothing.

    What a worker's import does before it sets its threads and devices: the process that
    workers are forked from (`automl.search.preload`) runs this once, so that a worker (a new
    one after a death included) starts without importing TensorFlow again. No device is touched
    here, so each forked worker still chooses its own GPU and threads.
    """
    debug = logging.getLogger("automl").isEnabledFor(logging.DEBUG)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "3")
    steady_cpu_memory()
    with quiet_stderr(enabled=not debug):
        import keras  # noqa: F401 - imported here so its start-up is silenced too
        import tensorflow  # noqa: F401


# glibc's mallopt parameter M_ARENA_MAX, and the number of arenas we allow.
_M_ARENA_MAX = -8
_ARENAS = 2


def steady_cpu_memory() -> None:
    """Keep a training process's memory steady from batch to batch (set before TensorFlow).

    TensorFlow's CPU tensors come from malloc by default; glibc then spreads freed batches over
    one arena per thread and keeps them: a worker on 4,000 photos peaked at 1.9 GB where the
    same model fed by Keras peaked at 1.2 GB. TensorFlow's own pool (BFC, as on GPUs) reuses
    its blocks, and two arenas cap what the other threads keep (0.9 GB with both, and faster
    epochs). A user's own TF_CPU_ALLOCATOR_USE_BFC wins; the arena cap is skipped off glibc.
    """
    import contextlib
    import ctypes

    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, _ARENAS)  # the process's own C library


class quiet_stderr:
    """Point file descriptor 2 at a temporary file; replay it only if the block raises."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._saved = -1
        self._file: Any = None

    def __enter__(self) -> None:
        if not self.enabled:
            return
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile(mode="w+b")
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if not self.enabled:
            return
        os.dup2(self._saved, 2)
        os.close(self._saved)
        if kind is not None:
            self._file.seek(0)
            sys.stderr.write(self._file.read().decode("utf-8", "replace"))
        self._file.close()


PRECISIONS = ("auto", "float32", "mixed")
# Tensor cores (compute capability 7.0, Volta, and later) are where float16 pays off.
MIXED_FROM_CAPABILITY = (7, 0)


def policy_for(precision: str, capabilities: Sequence[tuple[int, int]]) -> str:
    """The Keras dtype policy for `--precision` on GPUs of these compute capabilities.

    `auto` is `mixed_float16` when every visible GPU has tensor cores, else `float32` (the CPU
    included: float16 is slower there).
    """
    if precision == "mixed":
        return "mixed_float16"
    if precision == "float32":
        return "float32"
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    fast = bool(capabilities) and all(c >= MIXED_FROM_CAPABILITY for c in capabilities)
    return "mixed_float16" if fast else "float32"


def set_precision(precision: str) -> str:
    """Set this process's Keras dtype policy for `--precision` (before any model is built);
    returns the policy. Models keep float32 variables and a float32 output layer (the zoo's
    head; see `automl.spaces.zoo.classifier_head`)."""
    tf = import_tensorflow()
    import keras

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        capabilities.append(tuple(capability) if capability else (0, 0))
    policy = policy_for(precision, capabilities)
    keras.mixed_precision.set_global_policy(policy)
    return policy
