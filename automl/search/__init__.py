"""Running trials: the scheduler, the worker pool, the trial runner, pruning and engines.

Importing this package is cheap; TensorFlow is imported only inside worker processes and the
trial runner.
"""

from __future__ import annotations
