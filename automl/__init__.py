"""automl: hyperparameter search and AutoML for Keras image classifiers.

The library entry points (the CLI and the service call the same ones):

    from automl import SearchConfig, run_search, retrain_study, export_study, Predictor
    summary = run_search(SearchConfig(space="spaces/cnn.py", trials=30))
    retrain_study(summary.study, storage=summary.storage_url)
    export_study(summary.study, storage=summary.storage_url, output="exported")
    Predictor("exported").predict_files(["cat.png"])

Importing the package is cheap on purpose: each name loads its module on first use, and
TensorFlow and Keras are imported only where a model is built or run, never here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from automl.errors import AutoMLError
from automl.lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from automl.data import DataOptions
    from automl.deploy import Predictor, export_study, retrain_study
    from automl.notebook import ImageClassifier, Tuner
    from automl.reports import write_report
    from automl.search import SearchConfig, SearchObserver, SearchSummary, run_search
    from automl.spaces import load_space, read_space_settings

_HOMES = {
    "SearchConfig": "automl.search",
    "SearchObserver": "automl.search",
    "SearchSummary": "automl.search",
    "run_search": "automl.search",
    "DataOptions": "automl.data",
    "load_space": "automl.spaces",
    "read_space_settings": "automl.spaces",
    "retrain_study": "automl.deploy",
    "export_study": "automl.deploy",
    "Predictor": "automl.deploy",
    "write_report": "automl.reports",
    "Tuner": "automl.notebook",
    "ImageClassifier": "automl.notebook",
}


__getattr__ = lazy_exports("automl", _HOMES)

__all__ = [
    "AutoMLError",
    "DataOptions",
    "ImageClassifier",
    "Predictor",
    "SearchConfig",
    "SearchObserver",
    "SearchSummary",
    "Tuner",
    "__version__",
    "export_study",
    "load_space",
    "read_space_settings",
    "retrain_study",
    "run_search",
    "write_report",
]
