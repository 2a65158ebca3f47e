"""The report page: one self-contained HTML file from a study's records.

The page template, its styles and its script are files in `assets/`; plotly.js comes from the
plotly package (`plotly.offline.get_plotlyjs()`, the bundle that matches the figures it
builds) and is embedded once; figures are embedded as JSON and drawn in the page, so the file
opens with no network. Every user string is escaped by the sections, and every JSON
payload by `json_for_script`, before it is put into the template.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from string import Template

from automl.reports import figures
from automl.reports.escaping import esc, json_for_script
from automl.reports.plotly_figures import (
    curves_figure,
    history_figure,
    importance_figure,
    parallel_figure,
    slice_figure,
    timeline_figure,
)
from automl.reports.sections import (
    FigureBlock,
    leaderboard_section,
    search_section,
    summary_section,
    winner_section,
)
from automl.storage.records import StudyRecord
from automl.storage.tables import RetrainRecord


def render_report(
    record: StudyRecord,
    retrains: Sequence[RetrainRecord],
    *,
    generated: datetime,
    storage: str,
    optuna_importances: figures.OptunaImportances | None = None,
) -> str:
    """The whole report as one HTML string.

    Args:
        record: the study.
        retrains: its retrained models.
        generated: when the report is made.
        storage: the store's URL as shown (no password).
        optuna_importances: Optuna's PED-ANOVA importances, or why there are none. Defaults
            to `None`: not computed.
    """
    import plotly.offline

    blocks = search_figures(record, optuna_importances)
    winner_html, winner_blocks = winner_section(figures.winner(record, retrains), record)
    body = [
        summary_section(record, storage),
        leaderboard_section(record),
        search_section(blocks),
        winner_html,
    ]
    scripts = [
        f'<script type="application/json" id="{b.name}-data">{json_for_script(b.figure)}</script>'
        for b in [*blocks, *winner_blocks]
        if b.figure is not None
    ]
    # One pass of substitution: a value that contains `$name` is never filled in again.
    return Template(_asset("report.html")).substitute(
        title=esc(f"automl report — {record.name}"),
        heading=esc(record.name),
        generated=esc(generated.strftime("%Y-%m-%d %H:%M:%S")),
        style=_asset("report.css"),
        body="\n".join(body),
        data="\n".join(scripts),
        plotly=plotly.offline.get_plotlyjs(),
        script=_asset("report.js"),
    )


def search_figures(
    record: StudyRecord, optuna_importances: figures.OptunaImportances | None = None
) -> list[FigureBlock]:
    """The search's figures in page order; those with nothing to draw say why."""
    metric = record.metric
    maximize = record.direction == "maximize"
    history = figures.optimization_history(record)
    curves = figures.learning_curves(record)
    importances = figures.param_importances(record)
    top = [i.name for i in importances] or figures.param_names(record.trials)
    parallel = figures.parallel_coordinates(record, top)
    blocks = [
        FigureBlock(
            "history",
            "Optimization history",
            history_figure(history, metric) if history.numbers else None,
            "No finished trial yet.",
        ),
        FigureBlock(
            "curves",
            "Learning curves",
            curves_figure(curves, metric) if curves.curves else None,
            "No trial reported an epoch yet.",
        ),
        FigureBlock(
            "importances",
            "Parameter importances (variance of the binned means)",
            importance_figure(importances, figures.IMPORTANCE_TITLE) if importances else None,
            "Needs at least 4 complete trials with varying parameters.",
        ),
        FigureBlock(
            "parallel",
            "Parallel coordinates",
            parallel_figure(parallel, maximize) if parallel.numbers and top else None,
            "Needs complete trials.",
        ),
    ]
    if optuna_importances is not None:
        blocks.insert(
            3,
            FigureBlock(
                "ped-anova",
                "Parameter importances (Optuna's PED-ANOVA)",
                importance_figure(optuna_importances.values, optuna_importances.title)
                if optuna_importances.values
                else None,
                optuna_importances.reason,
            ),
        )
    for index, item in enumerate(figures.slices(record, top)):
        if item.x:
            blocks.append(
                FigureBlock(f"slice{index}", f"Slice: {item.name}", slice_figure(item, metric))
            )
    spans = figures.worker_timeline(record)
    blocks.append(
        FigureBlock(
            "timeline",
            "Worker timeline",
            timeline_figure(spans) if spans else None,
            "No trial has ended yet.",
        )
    )
    return blocks


def _asset(name: str) -> str:
    """A file of `assets/`, read as package data (so it works from a wheel too)."""
    return (resources.files("automl.reports") / "assets" / name).read_text(encoding="utf-8")
