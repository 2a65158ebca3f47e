"""Drawing the report: plotly figures from the figure data, and one self-contained HTML file.

plotly.js (the cartesian bundle, vendored in `assets/`) is embedded once; figures are embedded
as JSON and drawn in the page, so the file opens with no network. Every user-supplied string —
study name, parameter names and values, error text, class names — is escaped: HTML-escaped in
the page, and HTML-escaped before plotly (which reads a little HTML in labels) sees it.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from typing import Any

from automl.reports import figures
from automl.storage.records import StudyRecord, TrialState
from automl.storage.tables import RetrainRecord

STATE_COLOURS = {
    "complete": "#2563eb",
    "pruned": "#f59e0b",
    "failed": "#dc2626",
    "running": "#16a34a",
    "waiting": "#6b7280",
}


def esc(value: object) -> str:
    """HTML-escape any value for the page (and for plotly labels)."""
    return html.escape(str(value), quote=True)


def _json_for_script(data: Any) -> str:
    """JSON safe inside <script>: no `<`, `>` or `&` can close the tag or open a comment."""
    text = json.dumps(data, allow_nan=False, default=str, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _clean(values: Sequence[float | None]) -> list[float | None]:
    return [v if v is not None and math.isfinite(v) else None for v in values]


# -- figures --------------------------------------------------------------------------------------
# Figures are plotly JSON built as plain dicts: plotly.js draws them in the page. (Building them
# through plotly.graph_objects validates every trace and took seconds for large studies.)

_AXIS = {"gridcolor": "#e5e7eb", "zerolinecolor": "#d1d5db", "linecolor": "#9ca3af"}


def _layout(title: str, x: str, y: str, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": esc(title)},
        "xaxis": {**_AXIS, "title": {"text": esc(x)}},
        "yaxis": {**_AXIS, "title": {"text": esc(y)}},
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
    return {"data": traces, "layout": layout}


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
    traces = []
    shown_legend: set[str] = set()
    for curve in data.curves:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": curve.state,
                "x": curve.epochs,
                "y": _clean(curve.values),
                "legendgroup": curve.state,
                "showlegend": curve.state not in shown_legend,
                "line": {"color": STATE_COLOURS.get(curve.state, "#6b7280"), "width": 1},
                "marker": {"size": 3},
                "opacity": 0.6,
                "hovertemplate": f"trial {curve.number}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>",
            }
        )
        shown_legend.add(curve.state)
    title = "Learning curves (pruned trials stop early)"
    if data.omitted:
        title += f" — {data.omitted} trials not drawn"
    return _figure(traces, _layout(title, "epoch", metric, xaxis={"dtick": 1}))


def importance_figure(data: Sequence[figures.Importance]) -> dict[str, Any]:
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
        "Parameter importances (share of the objective's variance explained)",
        "importance",
        "",
        height=max(260, 40 + 28 * len(data)),
        margin={"l": 140},
    )
    return _figure([trace], layout)


def parallel_figure(data: figures.Parallel, maximize: bool) -> dict[str, Any]:
    """Parallel coordinates drawn with ordinary lines (no WebGL needed)."""
    count = len(data.axes)
    values = [v for v in data.objective if math.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    # Worst first, so the best lines are drawn on top.
    order = sorted(range(len(data.numbers)), key=lambda i: data.objective[i], reverse=not maximize)
    traces = []
    for i in order:
        quality = (data.objective[i] - low) / ((high - low) or 1.0)
        if not maximize:
            quality = 1.0 - quality
        colour = (
            f"rgba({int(220 - 190 * quality)},{int(60 + 80 * quality)},"
            f"{int(40 + 200 * quality)},{0.25 + 0.6 * quality:.2f})"
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": list(range(count)),
                "y": [axis.scaled[i] for axis in data.axes],
                "showlegend": False,
                "connectgaps": False,
                "line": {"color": colour, "width": 1.5},
                "hovertemplate": f"trial {data.numbers[i]}: {data.objective[i]:.4f}<extra></extra>",
            }
        )
    annotations = [
        {
            "x": position,
            "y": tick,
            "text": esc(label)[:24],
            "showarrow": False,
            "xanchor": "left",
            "xshift": 4,
            "font": {"size": 10, "color": "#374151"},
        }
        for position, axis in enumerate(data.axes)
        for tick, label in axis.ticks
    ]
    shapes = [
        {"type": "line", "x0": p, "x1": p, "y0": 0, "y1": 1, "line": {"color": "#9ca3af"}}
        for p in range(count)
    ]
    title = "Parallel coordinates (complete trials, best in blue)"
    if data.omitted:
        title += f" — {data.omitted} trials not drawn"
    layout = _layout(
        title,
        "",
        "",
        height=420,
        annotations=annotations,
        shapes=shapes,
        xaxis={
            "tickvals": list(range(count)),
            "ticktext": [esc(a.name) for a in data.axes],
            "range": [-0.2, count - 0.4],
            "showgrid": False,
        },
        yaxis={"visible": False, "range": [-0.05, 1.05]},
    )
    return _figure(traces, layout)


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


# -- page -----------------------------------------------------------------------------------------


def render_report(
    record: StudyRecord,
    retrains: Sequence[RetrainRecord],
    *,
    generated: datetime,
    storage: str,
) -> str:
    """The whole report as one HTML string."""
    figs: list[tuple[str, str, dict[str, Any] | None, str]] = []
    metric = record.metric
    maximize = record.direction == "maximize"
    finished = [t for t in record.trials if t.state.finished]
    history = figures.optimization_history(record)
    figs.append(
        (
            "history",
            "Optimization history",
            history_figure(history, metric) if history.numbers else None,
            "No finished trial yet.",
        )
    )
    curves = figures.learning_curves(record)
    figs.append(
        (
            "curves",
            "Learning curves",
            curves_figure(curves, metric) if curves.curves else None,
            "No trial reported an epoch yet.",
        )
    )
    importances = figures.param_importances(record)
    figs.append(
        (
            "importances",
            "Parameter importances",
            importance_figure(importances) if importances else None,
            "Needs at least 4 complete trials with varying parameters.",
        )
    )
    top = [i.name for i in importances] or figures.param_names(record.trials)
    parallel = figures.parallel_coordinates(record, top)
    figs.append(
        (
            "parallel",
            "Parallel coordinates",
            parallel_figure(parallel, maximize) if parallel.numbers and top else None,
            "Needs complete trials.",
        )
    )
    for index, item in enumerate(figures.slices(record, top)):
        if item.x:
            figs.append((f"slice{index}", f"Slice: {item.name}", slice_figure(item, metric), ""))
    spans = figures.worker_timeline(record)
    figs.append(
        (
            "timeline",
            "Worker timeline",
            timeline_figure(spans) if spans else None,
            "No trial has ended yet.",
        )
    )
    champion = figures.winner(record, retrains)
    winner_html, winner_figs = _winner_section(champion, record)
    body = [
        _summary_section(record, storage, len(finished)),
        _leaderboard_section(record),
        '<section id="figures"><h2>Search</h2>',
        *(_figure_block(name, title, fig, empty) for name, title, fig, empty in figs),
        "</section>",
        winner_html,
    ]
    scripts = [
        f'<script type="application/json" id="{name}-data">{_json_for_script(fig)}</script>'
        for name, _, fig, _ in [*figs, *winner_figs]
        if fig is not None
    ]
    title = f"automl report — {record.name}"
    return _PAGE.format(
        title=esc(title),
        heading=esc(record.name),
        generated=esc(generated.strftime("%Y-%m-%d %H:%M:%S")),
        style=_STYLE,
        body="\n".join(body),
        data="\n".join(scripts),
        plotly=_plotly_js(),
        script=_SCRIPT,
    )


def _figure_block(name: str, title: str, fig: dict[str, Any] | None, empty: str) -> str:
    if fig is None:
        return f'<div class="card"><h3>{esc(title)}</h3><p class="empty">{esc(empty)}</p></div>'
    return f'<div class="card"><div class="figure" id="{name}" data-figure="{name}"></div></div>'


def _summary_section(record: StudyRecord, storage: str, finished: int) -> str:
    counts = record.counts()
    data = record.data
    settings = record.settings
    best = record.best()
    wall = record.wall_time()
    shape = "×".join(str(d) for d in data.get("input_shape", []))
    sizes = ", ".join(f"{k} {v}" for k, v in (data.get("sizes") or {}).items())
    rows = [
        (
            "Space",
            f"{record.space.get('path', '?')} (sha256 {str(record.space.get('sha256', ''))[:12]})",
        ),
        (
            "Data",
            f"{data.get('source', '?')}: {shape}, {data.get('num_classes', '?')} classes ({sizes})",
        ),
        ("Classes", ", ".join(str(c) for c in data.get("class_names", [])[:30])),
        ("Objective", f"{record.metric} ({record.direction})"),
        ("Trials", ", ".join(f"{n} {s.value}" for s, n in counts.items() if n) or "none"),
        ("Wall time", f"{wall / 60:.1f} min" if wall is not None else "-"),
        (
            "Settings",
            ", ".join(
                f"{k}={v}"
                for k, v in settings.items()
                if k not in ("data_options",) and v is not None
            ),
        ),
        ("Store", storage),
    ]
    if data.get("notes"):
        rows.append(("Data notes", "; ".join(str(n) for n in data["notes"])))
    best_html = (
        f'<p class="best">Best trial <b>#{best.number}</b>: {esc(record.metric)} '
        f"<b>{best.value:.4f}</b> at epoch {esc(best.best_epoch)} of {best.epochs_run}</p>"
        if best is not None and best.value is not None
        else '<p class="best">No complete trial yet.</p>'
    )
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return (
        f'<section id="summary"><h2>Summary</h2>{best_html}'
        f'<table class="facts">{table}</table></section>'
    )


def _leaderboard_section(record: StudyRecord) -> str:
    metric = esc(record.metric)
    head = (
        '<tr><th data-sort="num">rank</th><th data-sort="num">trial</th>'
        '<th data-sort="text">state</th>'
        f'<th data-sort="num">{metric}</th><th data-sort="num">best epoch</th>'
        '<th data-sort="num">epochs run</th><th data-sort="num">parameters (count)</th>'
        '<th data-sort="num">duration (s)</th><th data-sort="text">parameters</th></tr>'
    )
    rows = []
    for rank, trial in enumerate(record.ranked(), start=1):
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
        if trial.failure:
            params += f" — {trial.failure}"
        cells = [
            (rank, str(rank)),
            (trial.number, str(trial.number)),
            (trial.state.value, trial.state.value),
            _num(trial.value, 4),
            _num(trial.best_epoch, 0),
            (trial.epochs_run, str(trial.epochs_run)),
            _num(trial.params_count, 0, thousands=True),
            _num(trial.duration, 1),
            (params, params),
        ]
        tds = "".join(f'<td data-value="{esc(v)}">{esc(t)}</td>' for v, t in cells)
        rows.append(f'<tr data-state="{esc(trial.state.value)}">{tds}</tr>')
    options = "".join(f'<option value="{s.value}">{s.value}</option>' for s in TrialState)
    return (
        '<section id="leaderboard"><h2>Leaderboard</h2>'
        '<p class="hint">Click a column to sort. Show: '
        f'<select id="state-filter"><option value="">all states</option>{options}</select>'
        f' <span id="row-count">{len(rows)} trials</span></p>'
        f'<div class="scroll"><table class="board"><thead>{head}</thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _winner_section(
    champion: figures.Winner | None, record: StudyRecord
) -> tuple[str, list[tuple[str, str, dict[str, Any] | None, str]]]:
    if champion is None:
        return (
            '<section id="winner"><h2>Retrained winner</h2><p class="empty">Not retrained yet: '
            f"run <code>automl retrain {esc(record.name)}</code> (or a search without "
            "--no-retrain) to train the best trial on train + val and score it on the test "
            "split.</p></section>",
            [],
        )
    metrics = champion.metrics
    facts = [
        ("Trial", f"#{champion.trial}"),
        (
            "Test accuracy",
            f"{champion.mean_accuracy:.4f}"
            + (
                f" ± {champion.std_accuracy:.4f} over {len(champion.runs)} seeds"
                if len(champion.runs) > 1
                else ""
            ),
        ),
    ]
    if "top5_accuracy" in metrics:
        facts.append(("Test top-5 accuracy", f"{metrics['top5_accuracy']:.4f}"))
    for key in ("macro_precision", "macro_recall", "macro_f1"):
        if key in metrics:
            facts.append((key.replace("_", " "), f"{metrics[key]:.4f}"))
    run = champion.runs[0]
    facts.append(
        ("Retraining", f"{run.epochs} epochs on train + val, {run.seconds:.1f} s (seed {run.seed})")
    )
    if champion.validation_value is not None:
        facts.append((f"Search {champion.metric} (val)", f"{champion.validation_value:.4f}"))
    if champion.checkpoint is not None:
        facts.append(
            (
                "Trial checkpoint, test accuracy",
                f"{champion.checkpoint.accuracy:.4f} (best epoch of the search, no retraining)",
            )
        )
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    per_class = metrics.get("per_class") or []
    class_rows = "".join(
        f"<tr><td>{esc(row.get('class'))}</td><td>{row.get('precision', 0):.3f}</td>"
        f"<td>{row.get('recall', 0):.3f}</td><td>{row.get('f1', 0):.3f}</td>"
        f"<td>{esc(row.get('support'))}</td></tr>"
        for row in per_class
    )
    class_table = (
        '<table class="board"><thead><tr><th>class</th><th>precision</th><th>recall</th>'
        f"<th>F1</th><th>support</th></tr></thead><tbody>{class_rows}</tbody></table>"
    )
    extra: list[tuple[str, str, dict[str, Any] | None, str]] = []
    matrix = metrics.get("confusion_matrix")
    if matrix:
        extra.append(
            (
                "confusion",
                "Confusion matrix",
                confusion_figure(matrix, [str(r.get("class")) for r in per_class]),
                "",
            )
        )
    if run.history:
        extra.append(("retrain-curves", "Retraining curves", training_figure(run.history), ""))
    blocks = "".join(_figure_block(n, t, f, e) for n, t, f, e in extra)
    return (
        f'<section id="winner"><h2>Retrained winner</h2><table class="facts">{table}</table>'
        f"<h3>Per class (test split, seed {run.seed})</h3>{class_table}{blocks}</section>",
        extra,
    )


def _num(value: float | int | None, digits: int, thousands: bool = False) -> tuple[object, str]:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ("", "-")
    if thousands:
        return (value, f"{value:,.0f}")
    return (value, f"{value:.{digits}f}" if digits else str(value))


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _plotly_js() -> str:
    return (resources.files("automl.reports") / "assets" / "plotly-cartesian.min.js").read_text(
        encoding="utf-8"
    )


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#111827;
background:#f3f4f6}
header{background:#111827;color:#f9fafb;padding:14px 28px}
header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#9ca3af;font-size:13px}
nav a{color:#93c5fd;margin-right:14px;font-size:14px;text-decoration:none}
main{padding:16px 28px;max-width:1300px;margin:auto}
section{margin-bottom:28px}h2{border-bottom:2px solid #d1d5db;padding-bottom:4px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:10px;
margin:12px 0}
table.facts th{text-align:left;padding:3px 14px 3px 0;color:#374151;vertical-align:top;
white-space:nowrap}table.facts td{padding:3px 0}
.scroll{max-height:560px;overflow:auto;background:#fff;border-radius:8px}
table.board{border-collapse:collapse;width:100%;font-size:13px;background:#fff}
table.board th{position:sticky;top:0;background:#e5e7eb;cursor:pointer;padding:6px;text-align:left;
white-space:nowrap}
table.board td{border-top:1px solid #e5e7eb;padding:4px 6px;vertical-align:top}
tr[data-state=pruned] td:nth-child(3){color:#b45309}tr[data-state=failed] td:nth-child(3)
{color:#b91c1c}tr[data-state=complete] td:nth-child(3){color:#1d4ed8}
.best{font-size:17px}.empty{color:#6b7280}.hint{font-size:13px;color:#4b5563}
code{background:#e5e7eb;padding:1px 4px;border-radius:4px}
"""

_SCRIPT = """
(function(){
  var rendered = 0, failed = [];
  document.querySelectorAll('[data-figure]').forEach(function(div){
    var source = document.getElementById(div.id + '-data');
    if (!source) { return; }
    try {
      var fig = JSON.parse(source.textContent);
      Plotly.newPlot(div, fig.data, fig.layout,
        {displaylogo: false, responsive: true, showLink: false, showEditInChartStudio: false,
         showSendToCloud: false});
      rendered += 1;
    } catch (e) { failed.push(div.id + ': ' + e); }
  });
  window.automlFigures = {rendered: rendered, failed: failed};
  var body = document.querySelector('table.board tbody');
  var filter = document.getElementById('state-filter');
  function count(){
    var shown = 0;
    body.querySelectorAll('tr').forEach(function(tr){ if (tr.style.display !== 'none') shown++; });
    document.getElementById('row-count').textContent = shown + ' trials';
  }
  if (filter) {
    filter.addEventListener('change', function(){
      body.querySelectorAll('tr').forEach(function(tr){
        tr.style.display = (!filter.value || tr.dataset.state === filter.value) ? '' : 'none';
      });
      count();
    });
  }
  document.querySelectorAll('table.board thead th').forEach(function(th, column){
    var ascending = true;
    th.addEventListener('click', function(){
      var numeric = th.dataset.sort === 'num';
      var rows = Array.prototype.slice.call(body.querySelectorAll('tr'));
      rows.sort(function(a, b){
        var x = a.children[column].dataset.value, y = b.children[column].dataset.value;
        if (numeric) {
          x = x === '' ? Infinity : parseFloat(x); y = y === '' ? Infinity : parseFloat(y);
          return ascending ? x - y : y - x;
        }
        return ascending ? x.localeCompare(y) : y.localeCompare(x);
      });
      ascending = !ascending;
      rows.forEach(function(tr){ body.appendChild(tr); });
    });
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header><h1>automl study: {heading}</h1><p>Generated {generated}</p>
<nav><a href="#summary">Summary</a><a href="#leaderboard">Leaderboard</a>
<a href="#figures">Search</a><a href="#winner">Retrained winner</a></nav></header>
<main>
{body}
</main>
{data}
<script>{plotly}</script>
<script>{script}</script>
</body>
</html>
"""
