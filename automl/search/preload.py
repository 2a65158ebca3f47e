"""What the process that workers are forked from imports once (`automl.search.pool`).

Importing TensorFlow takes 3–4 s of CPU; a worker forked from a process that has done it starts
in a fraction of a second: at the start of a search, and again each time a worker is replaced
(after a death, an out-of-memory error or a timeout). Nothing here touches a device or sets a
thread count: each worker does that itself for its slot, after the fork.
"""

from automl.tfruntime import preload_tensorflow

preload_tensorflow()

import automl.search.training  # noqa: E402
import automl.search.worker  # noqa: E402, F401
