"""The report's HTML sections: summary, leaderboard, search figures, retrained winner.

Each section is a function of records that returns HTML with every user string escaped. A figure
is a `FigureBlock`: the section shows its placeholder (or why it is empty), and `render` embeds
its data once for the page script to draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from automl.reports import figures
from automl.reports.escaping import esc
from automl.reports.plotly_figures import confusion_figure, training_figure
from automl.storage.records import StudyRecord, TrialState


@dataclass(frozen=True)
class FigureBlock:
    """One figure of the page.

    Args:
        name: the element id; its data goes in the script tag `<name>-data`.
        title: shown above the empty message.
        figure: the plotly figure, or None when there is nothing to draw.
        empty: why there is nothing to draw.
    """

    name: str
    title: str
    figure: dict[str, Any] | None
    empty: str = ""


def search_section(blocks: Sequence[FigureBlock]) -> str:
    """The search's figures, one card each."""
    return "\n".join(
        ['<section id="figures"><h2>Search</h2>', *(figure_block(b) for b in blocks), "</section>"]
    )


def figure_block(block: FigureBlock) -> str:
    """A figure's placeholder for the page script to draw in, or its title and why it is empty."""
    if block.figure is None:
        return (
            f'<div class="card"><h3>{esc(block.title)}</h3>'
            f'<p class="empty">{esc(block.empty)}</p></div>'
        )
    name = block.name
    return f'<div class="card"><div class="figure" id="{name}" data-figure="{name}"></div></div>'


def summary_section(record: StudyRecord, storage: str) -> str:
    """What was searched on which data, the trial counts, the settings and the best trial."""
    counts = record.counts()
    data = record.data
    settings = record.settings
    best = record.best()
    wall = record.wall_time()
    shape = "×".join(str(d) for d in data.input_shape)
    sizes = ", ".join(f"{k} {v}" for k, v in data.sizes.items())
    rows = [
        ("Space", f"{record.space.path or '?'} (sha256 {record.space.sha256[:12]})"),
        ("Data", f"{data.source or '?'}: {shape}, {data.num_classes} classes ({sizes})"),
        ("Classes", ", ".join(str(c) for c in data.class_names[:30])),
        ("Objective", f"{record.metric} ({record.direction})"),
        ("Trials", ", ".join(f"{n} {s.value}" for s, n in counts.items() if n) or "none"),
        ("Wall time", f"{wall / 60:.1f} min" if wall is not None else "-"),
        ("Settings", ", ".join(f"{k}={v}" for k, v in settings.shown().items())),
        ("Store", storage),
    ]
    if data.notes:
        rows.append(("Data notes", "; ".join(str(n) for n in data.notes)))
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


def leaderboard_section(record: StudyRecord) -> str:
    """Every trial in ranking order (the order `automl show` prints), sortable and filterable."""
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
        epochs = str(trial.epochs_run)
        if trial.resumed_epoch is not None:  # continued a killed trial mid-way
            epochs += f" (resumed #{trial.retry_of} after epoch {trial.resumed_epoch})"
        cells = [
            (rank, str(rank)),
            (trial.number, str(trial.number)),
            (trial.state.value, trial.state.value),
            _num(trial.value, 4),
            _num(trial.best_epoch, 0),
            (trial.epochs_run, epochs),
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


def winner_section(
    champion: figures.Winner | None, record: StudyRecord
) -> tuple[str, list[FigureBlock]]:
    """The retrained winner's test metrics and per-class table, and the figures it places.

    Returns:
        The section's HTML and its figures, whose data the page embeds.
    """
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
    facts.extend(_noise_facts(champion, record))
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
    extra: list[FigureBlock] = []
    matrix = metrics.get("confusion_matrix")
    if matrix:
        extra.append(
            FigureBlock(
                "confusion",
                "Confusion matrix",
                confusion_figure(matrix, [str(r.get("class")) for r in per_class]),
            )
        )
    if run.history:
        extra.append(
            FigureBlock("retrain-curves", "Retraining curves", training_figure(run.history))
        )
    blocks = "".join(figure_block(b) for b in extra)
    return (
        f'<section id="winner"><h2>Retrained winner</h2><table class="facts">{table}</table>'
        f"<h3>Per class (test split, seed {run.seed})</h3>{class_table}{blocks}</section>",
        extra,
    )


def _noise_facts(champion: figures.Winner, record: StudyRecord) -> list[tuple[str, str]]:
    """The winner's seed-to-seed spread next to the gap between the search's best trials, and
    how it was chosen among several retrained trials."""
    facts = []
    accuracies = [r.accuracy for r in champion.runs]
    if len(accuracies) > 1:
        complete = [t.value for t in record.ranked() if t.state is TrialState.COMPLETE]
        gap = (
            f"; the search's two best trials differ by {abs(complete[0] - complete[1]):.4f} in "
            f"{record.metric}"
            if len(complete) > 1 and complete[0] is not None and complete[1] is not None
            else ""
        )
        facts.append(
            (
                "Noise floor",
                f"test accuracy varies by {champion.std_accuracy:.4f} (std; range "
                f"{max(accuracies) - min(accuracies):.4f}) from seed to seed of the same "
                f"configuration{gap}: differences smaller than this spread are noise",
            )
        )
    if champion.others:
        means = [(champion.trial, champion.mean_accuracy)]
        means += [(t.trial, t.mean_accuracy) for t in champion.others[:5]]
        shown = ", ".join(f"#{number} {mean:.4f}" for number, mean in means)
        moved = (
            f"; the search ranked #{champion.search_best} first"
            if champion.search_best is not None and champion.search_best != champion.trial
            else ""
        )
        facts.append(
            (
                "Chosen",
                f"best mean test accuracy of {1 + len(champion.others)} retrained trials "
                f"({shown}){moved}",
            )
        )
    return facts


def _num(value: float | int | None, digits: int, thousands: bool = False) -> tuple[object, str]:
    # (the value the page script sorts by, the text shown); a missing value sorts last.
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ("", "-")
    if thousands:
        return (value, f"{value:,.0f}")
    return (value, f"{value:.{digits}f}" if digits else str(value))


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
