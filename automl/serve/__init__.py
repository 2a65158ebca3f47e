"""`automl serve`: the dashboard, the JSON API, search jobs and the prediction endpoint.

A FastAPI app (the `serve` extra) over the same library functions the CLI calls: studies are
read with `StudyStore`, reports rendered with `automl.reports`, searches, retraining and exports
run as child processes of the server running the same commands, and predictions use
`automl.deploy.Predictor` on export folders inside `--models`.
"""

from __future__ import annotations

from automl.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def create_app(config: ServeConfig):  # type: ignore[no-untyped-def]
    """The FastAPI app for `config` (imports FastAPI only when called)."""
    from automl.serve.app import create_app as create

    return create(config)
