"""Plotly figures from the report's figure data, built with the plotly package.

Each builder takes one `automl.reports.figures` value and returns the figure as plotly's JSON
dict (`go.Figure(...).to_plotly_json()`), which plotly.js draws in the page. Each figure has a
few traces whatever the number of trials (the learning curves of one state are one trace with
gaps; parallel coordinates are one `parcoords` trace), so building and validating them stays
fast at thousands of trials. Every user string in a label is HTML-escaped first: plotly reads a
little HTML in labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from automl.reports import figures
from automl.reports.escaping import esc

STATE_COLOURS = {
    "complete": "#2563eb",
    "pruned": "#f59e0b",
    "failed": "#dc2626",
    "running": "#16a34a",
    "waiting": "#6b7280",
}


_AXIS = {"gridcolor": "#e5e7eb", "zerolinecolor": "#d1d5db", "linecolor": "#9ca3af"}


def _layout(title: str, x: str, y: str, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": esc(title)},
        "xaxis": {**_AXIS, "title": {"text": esc(x)}},
        "yaxis": {**_AXIS, "title": {"text": esc(y)}},
        "template": "none",  # plotly's default template would add ~7 KB to every figure
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "height": 380,
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(layout.get(key), dict):
            layout[key] = {**layout[key], **value}
        else:
            layout[key] = value
    return layout


def _figure(traces: list[dict[str, Any]], layout: dict[str, Any]) -> dict[str, Any]:
    """The figure through plotly's graph objects (which check every property), as JSON."""
    import plotly.graph_objects as go

    figure = go.Figure(data=traces, layout=layout).to_plotly_json()
    return {"data": figure["data"], "layout": figure["layout"]}


def history_figure(data: figures.History, metric: str) -> dict[str, Any]:
    traces = []
    for state in ("complete", "pruned"):
        index = [i for i, s in enumerate(data.states) if s == state]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": state,
                "x": [data.numbers[i] for i in index],
                "y": _clean([data.values[i] for i in index]),
                "marker": {"color": STATE_COLOURS[state], "size": 7},
                "hovertemplate": "trial %{x}<br>%{y:.4f}<extra></extra>",
            }
        )
    traces.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "best so far",
            "x": data.numbers,
            "y": _clean(data.best_so_far),
            "line": {"color": "#111827", "shape": "hv"},
        }
    )
    return _figure(traces, _layout("Optimization history", "trial", metric))


def curves_figure(data: figures.Curves, metric: str) -> dict[str, Any]:
    """One trace per state: its trials' curves joined by gaps (null points)."""
    traces = []
    for state in dict.fromkeys(curve.state for curve in data.curves):
        x: list[int | None] = []
        y: list[float | None] = []
        numbers: list[int | None] = []
        for curve in (c for c in data.curves if c.state == state):
            x += [*curve.epochs, None]
            y += [*_clean(curve.values), None]
            numbers += [curve.number] * len(curve.epochs) + [None]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": state,
                "x": x,
                "y": y,
                "customdata": numbers,
                "connectgaps": False,
                "line": {"color": STATE_COLOURS.get(state, "#6b7280"), "width": 1},
                "marker": {"size": 3},
                "opacity": 0.6,
                "hovertemplate": "trial %{customdata}<br>epoch %{x}: %{y:.4f}<extra></extra>",
            }
        )
    title = "Learning curves (pruned trials stop early)"
    if data.omitted:
        title += f" — {data.omitted} trials not drawn"
    return _figure(traces, _layout(title, "epoch", metric, xaxis={"dtick": 1}))


def importance_figure(data: Sequence[figures.Importance], title: str) -> dict[str, Any]:
    ordered = list(reversed(data))
    trace = {
        "type": "bar",
        "orientation": "h",
        "x": [i.value for i in ordered],
        "y": [esc(i.name) for i in ordered],
        "marker": {"color": "#2563eb"},
        "hovertemplate": "%{y}: %{x:.3f}<extra></extra>",
    }
    layout = _layout(
        title, "importance", "", height=max(260, 40 + 28 * len(data)), margin={"l": 140}
    )
    return _figure([trace], layout)


# Where a conditional parameter's inactive trials sit on its parallel-coordinates axis.
INACTIVE = -0.15


def parallel_figure(data: figures.Parallel, maximize: bool) -> dict[str, Any]:
    """Plotly's parallel coordinates (drag along an axis to filter the trials), coloured by the
    objective; a conditional parameter's inactive trials sit below its axis."""
    dimensions = []
    for axis in data.axes:
        inactive = any(v is None for v in axis.scaled)
        ticks = [(INACTIVE, "inactive"), *axis.ticks] if inactive else list(axis.ticks)
        dimensions.append(
            {
                "label": esc(axis.name)[:24],
                "values": [INACTIVE if v is None else v for v in axis.scaled],
                "range": [INACTIVE if inactive else 0.0, 1.0],
                "tickvals": [tick for tick, _ in ticks],
                "ticktext": [esc(label)[:24] for _, label in ticks],
            }
        )
    trace = {
        "type": "parcoords",
        "line": {
            "color": _clean(data.objective),
            "colorscale": "Viridis",
            "reversescale": not maximize,  # the best trials are yellow either way
            "showscale": True,
        },
        "dimensions": dimensions,
        "labelangle": -20,
    }
    title = "Parallel coordinates (complete trials; drag along an axis to filter)"
    if data.omitted:
        title += f" — {data.omitted} trials not drawn"
    layout = _layout(title, "", "", height=460, margin={"l": 80, "r": 80, "t": 110, "b": 40})
    layout.pop("xaxis")
    layout.pop("yaxis")
    return _figure([trace], layout)


def slice_figure(data: figures.Slice, metric: str) -> dict[str, Any]:
    x = [esc(v) for v in data.x] if data.categorical else data.x
    trace = {
        "type": "scatter",
        "mode": "markers",
        "x": x,
        "y": _clean(data.y),
        "marker": {
            "color": data.numbers,
            "colorscale": "Viridis",
            "size": 7,
            "colorbar": {"title": {"text": "trial"}},
        },
        "customdata": data.numbers,
        "hovertemplate": "trial %{customdata}: %{y:.4f}<extra></extra>",
    }
    numeric = [v for v in data.x if isinstance(v, (int, float)) and not isinstance(v, bool)]
    extra: dict[str, Any] = {}
    if not data.categorical and numeric and min(numeric) > 0 and max(numeric) / min(numeric) > 100:
        extra["xaxis"] = {"type": "log"}
    if data.categorical:
        extra["xaxis"] = {"type": "category"}
    return _figure([trace], _layout(f"Slice: {data.name}", data.name, metric, height=320, **extra))


def timeline_figure(spans: Sequence[figures.Span]) -> dict[str, Any]:
    traces = []
    for state in ("complete", "pruned", "failed"):
        chosen = [s for s in spans if s.state == state]
        if not chosen:
            continue
        traces.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": state,
                "base": [s.start for s in chosen],
                "x": [max(s.end - s.start, 0.01) for s in chosen],
                "y": [esc(s.slot) for s in chosen],
                "marker": {"color": STATE_COLOURS[state]},
                "customdata": [s.number for s in chosen],
                "hovertemplate": "trial %{customdata}: %{x:.1f} s<extra></extra>",
            }
        )
    slots = sorted({s.slot for s in spans})
    layout = _layout(
        "Worker timeline",
        "seconds since the first trial",
        "slot",
        barmode="overlay",
        height=max(220, 90 + 40 * len(slots)),
        yaxis={"type": "category"},
    )
    return _figure(traces, layout)


def confusion_figure(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> dict[str, Any]:
    names = [esc(n) for n in class_names] or [str(i) for i in range(len(matrix))]
    trace = {
        "type": "heatmap",
        "z": matrix,
        "x": names,
        "y": names,
        "colorscale": [[0.0, "#f7fbff"], [0.5, "#6baed6"], [1.0, "#08306b"]],
        "text": matrix,
        "texttemplate": "%{text}",
        "hovertemplate": "true %{y}, predicted %{x}: %{z}<extra></extra>",
    }
    layout = _layout(
        "Confusion matrix (test split)",
        "predicted",
        "true",
        height=max(320, 80 + 30 * len(names)),
        xaxis={"type": "category"},
        yaxis={"type": "category", "autorange": "reversed"},
    )
    return _figure([trace], layout)


def training_figure(history: Sequence[dict[str, float]]) -> dict[str, Any]:
    epochs = list(range(1, len(history) + 1))
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": esc(key),
            "x": epochs,
            "y": _clean([h.get(key) for h in history]),
        }
        for key in sorted({k for h in history for k in h})
    ]
    return _figure(
        traces, _layout("Retraining curves (train + val)", "epoch", "value", xaxis={"dtick": 1})
    )


def _clean(values: Sequence[float | None]) -> list[float | None]:
    # JSON has no NaN or infinity; plotly leaves a gap for null.
    return [v if v is not None and math.isfinite(v) else None for v in values]
