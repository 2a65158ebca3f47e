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
from typing import Any

_ready = False


def import_tensorflow(*, threads: int | None = None, memory_growth: bool = True) -> Any:
    """Import TensorFlow and Keras (once) and return the `tensorflow` module.

    Args:
        threads: intra-op threads for this process (workers split the CPUs); `None` leaves
            TensorFlow's default. Defaults to `None`.
        memory_growth: let each visible GPU's memory grow instead of taking it all, so several
            trials can share a GPU. Defaults to `True`.
    """
    global _ready
    if _ready:
        return sys.modules["tensorflow"]
    debug = logging.getLogger("automl").isEnabledFor(logging.DEBUG)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "3")
    with quiet_stderr(enabled=not debug):
        import keras  # noqa: F401 - imported here so its start-up is silenced too
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
        for gpu in tf.config.list_physical_devices("GPU"):
            if memory_growth:
                tf.config.experimental.set_memory_growth(gpu, True)
    tf.get_logger().setLevel("ERROR")
    _ready = True
    return tf


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
