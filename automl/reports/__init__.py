"""The HTML report of a study: ranking, figures (computed as data, then drawn) and the
retrained winner. Reports read records only: they never import TensorFlow or write the store.
"""

from __future__ import annotations

from automl.reports.report import write_report

__all__ = ["write_report"]
