"""Running trials: the scheduler, the worker pool, the trial runner, pruning and engines.

Importing this package is cheap: the names below load their module on first use, and TensorFlow
is imported only inside worker processes and the trial runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from automl.lazy import lazy_exports

if TYPE_CHECKING:
    from automl.search.config import SearchConfig
    from automl.search.events import (
        NullObserver,
        SearchObserver,
        SearchStart,
        SearchSummary,
        TrialEvent,
    )
    from automl.search.run import run_search

_HOMES = {
    "SearchConfig": "automl.search.config",
    "NullObserver": "automl.search.events",
    "SearchObserver": "automl.search.events",
    "SearchStart": "automl.search.events",
    "SearchSummary": "automl.search.events",
    "TrialEvent": "automl.search.events",
    "run_search": "automl.search.run",
}


__getattr__ = lazy_exports("automl.search", _HOMES)

__all__ = [
    "NullObserver",
    "SearchConfig",
    "SearchObserver",
    "SearchStart",
    "SearchSummary",
    "TrialEvent",
    "run_search",
]
