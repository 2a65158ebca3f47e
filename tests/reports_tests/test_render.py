"""The HTML report: self-contained, escaped, every edge case renders."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime

import pytest

from automl.reports.render import render_report
from automl.storage.attributes import DataSummary, SearchSettings, SpaceProvenance
from automl.storage.records import TrialState

from .records import make_record, make_retrain, make_trial, many_trials

C, P, F = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED
NOW = datetime(2026, 11, 22, 10, 0, 0)


def render(record: object, retrains: list[object] | None = None) -> str:
    return render_report(
        record,
        retrains or [],
        generated=NOW,  # type: ignore[arg-type]
        storage="sqlite:///runs/automl.db",
    )


def _page_outside_plotly(page: str) -> str:
    start = page.index("<script>/**\n* plotly.js")
    end = page.index("</script>", start)
    return page[:start] + page[end:]


def test_self_contained_with_plotly_embedded_once() -> None:
    page = render(make_record([make_trial(i, C, i / 10) for i in range(6)]))
    assert page.count("* plotly.js v") == 1
    outside = _page_outside_plotly(page)
    assert not re.search(r"https?://", outside)  # our markup, styles, scripts and data
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", outside)
    # plotly.js as the plotly package ships it, unedited (its own URLs are inert strings: map
    # tiles, licences; the browser test checks the page makes no request).
    import plotly.offline

    bundle = plotly.offline.get_plotlyjs()
    start = page.index("<script>/**\n* plotly.js") + len("<script>")
    assert page[start : start + len(bundle)] == bundle


def test_sections_and_leaderboard() -> None:
    trials = [
        make_trial(0, C, 0.5),
        make_trial(1, P, 0.9),
        make_trial(2, F, failure="OOM"),
        make_trial(3, C, 0.7),
        make_trial(4, TrialState.RUNNING),
    ]
    page = render(make_record(trials), [make_retrain(3, 0.77)])
    for section in ("summary", "leaderboard", "figures", "winner"):
        assert f'<section id="{section}">' in page
    rows = re.findall(
        r'<tr data-state="(\w+)"><td data-value="(\d+)">\d+</td>'
        r'<td data-value="(\d+)">',
        page,
    )
    assert [(state, number) for state, _, number in rows] == [
        ("complete", "3"),
        ("complete", "0"),
        ("pruned", "1"),
        ("failed", "2"),
        ("running", "4"),
    ]
    assert "Best trial <b>#3</b>" in page
    assert "OOM" in page
    assert "0.7700" in page  # retrained test accuracy
    for figure in (
        "history",
        "curves",
        "importances",
        "parallel",
        "timeline",
        "confusion",
        "retrain-curves",
    ):
        data = re.search(
            rf'<script type="application/json" id="{figure}-data">(.*?)</script>', page, re.S
        )
        if figure == "importances":
            assert data is None  # 2 complete trials are not enough
            assert "Needs at least 4 complete trials" in page
            continue
        assert data, figure
        assert json.loads(data.group(1))["data"]


@pytest.mark.parametrize(
    ("trials", "expected"),
    [
        ([make_trial(0, C, 0.5)], "Best trial <b>#0</b>"),
        (
            [make_trial(0, F, failure="bad"), make_trial(1, F, failure="worse")],
            "No complete trial yet.",
        ),
        ([], "No finished trial yet."),
    ],
    ids=["one-trial", "only-failed", "empty"],
)
def test_edge_cases_render(trials: list[object], expected: str) -> None:
    page = render(make_record(trials))  # type: ignore[arg-type]
    assert expected in page
    assert "Not retrained yet" in page


def _figure_data(page: str, name: str) -> dict[str, object]:
    start = page.index(f'id="{name}-data">') + len(f'id="{name}-data">')
    return json.loads(page[start : page.index("</script>", start)])  # type: ignore[no-any-return]


def test_figures_are_plotlys_own_with_a_parcoords_and_both_importances() -> None:
    """Built by the plotly package (validated), parallel coordinates as one `parcoords` trace
    whose axes can be brushed, a conditional parameter's inactive trials below its axis, and
    Optuna's PED-ANOVA beside automl's own importance estimate, each labelled as what it is."""
    import plotly

    from automl.reports.figures import Importance, OptunaImportances

    trials = [
        make_trial(i, C, i / 20, params={"lr": 10.0 ** -(1 + i % 4), "optimizer": "adam"})
        if i % 2
        else make_trial(i, C, i / 20, params={"lr": 10.0 ** -(1 + i % 4), "momentum": i / 20})
        for i in range(12)
    ]
    ped = OptunaImportances([Importance("lr", 1.0)], title="Optuna's PED-ANOVA importance")
    page = render_report(
        make_record(trials), [], generated=NOW, storage="x", optuna_importances=ped
    )
    assert page.count(f"* plotly.js v{plotly.offline.get_plotlyjs_version()}") == 1
    (trace,) = _figure_data(page, "parallel")["data"]  # type: ignore[misc]
    assert trace["type"] == "parcoords"
    labels = [d["label"] for d in trace["dimensions"]]
    assert labels[-1] == "val_accuracy" and "lr" in labels
    momentum = next(d for d in trace["dimensions"] if d["label"] == "momentum")
    assert "inactive" in momentum["ticktext"] and min(momentum["values"]) < 0
    own = _figure_data(page, "importances")["layout"]["title"]["text"]  # type: ignore[index]
    assert "automl's own estimate" in html.unescape(own)
    ped_figure = _figure_data(page, "ped-anova")
    assert ped_figure["data"][0]["y"] == ["lr"]  # type: ignore[index]
    assert "PED-ANOVA" in ped_figure["layout"]["title"]["text"]  # type: ignore[index]
    reason = OptunaImportances([], reason="Needs at least 10 complete trials.")
    page = render_report(
        make_record(trials), [], generated=NOW, storage="x", optuna_importances=reason
    )
    assert "Needs at least 10 complete trials." in page and 'id="ped-anova-data"' not in page


def test_two_thousand_trials_stay_under_10_mb() -> None:
    page = render(many_trials(2000, params=15))
    assert len(page.encode()) <= 10 * 1024 * 1024
    assert page.count("<tr data-state=") == 2000
    assert "trials not drawn" in page  # the plots that grow with trials are bounded


PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "javascript:alert(1)"]


def test_user_strings_are_escaped_everywhere() -> None:
    evil = PAYLOADS[0] + PAYLOADS[1] + PAYLOADS[2]
    trials = [
        make_trial(i, C, i / 10, params={evil: evil, "lr": 0.1 * (i + 1)}, slot=evil, failure=evil)
        for i in range(5)
    ] + [make_trial(5, F, failure=evil)]
    record = make_record(
        trials,
        name="study" + PAYLOADS[1],
        data=DataSummary(
            source=evil,
            input_shape=(8, 8, 1),
            num_classes=2,
            class_names=(PAYLOADS[0], PAYLOADS[1]),
            sizes={"train": 1},
            notes=(evil,),
        ),
        space=SpaceProvenance(path=evil, sha256=evil),
        settings=SearchSettings(objective=evil),
    )
    retrain = make_retrain(4, 0.9, classes=(PAYLOADS[0], PAYLOADS[1]))
    page = render(record, [retrain])
    outside = _page_outside_plotly(page)
    for payload in PAYLOADS[:2]:
        assert payload not in outside
    assert "<script>alert" not in outside and "<img" not in outside
    assert "onerror=alert" not in outside.replace(html.escape("onerror=alert"), "")
    assert not re.search(r"""href\s*=\s*["']?\s*javascript:""", outside, re.I)
    # Shown, escaped, where people read them.
    assert html.escape(PAYLOADS[0]) in outside and html.escape(PAYLOADS[1]) in outside
    # Inside embedded JSON no tag can open: "<" never appears raw in a data script.
    for data in re.findall(
        r'<script type="application/json" id="[\w-]+">(.*?)</script>', page, re.S
    ):
        assert "<" not in data and ">" not in data
        json.loads(data)


def test_template_placeholders_in_user_strings_stay_literal() -> None:
    name = "s${body}$data${plotly}"
    page = render(make_record([make_trial(0, C, 0.5, params={"$title": "${script}"})], name=name))
    assert page.count("* plotly.js v") == 1
    assert f"automl study: {name}</h1>" in page
    assert "$title=${script}" in _page_outside_plotly(page)


def test_a_trial_resumed_mid_way_is_shown_as_resumed() -> None:
    killed = make_trial(0, F, failure="worker cpu0 died (signal 9 (SIGKILL))")
    retry = make_trial(1, C, 0.9, retry_of=0, resumed_epoch=4)
    page = render(make_record([killed, retry]))
    assert "3 (resumed #0 after epoch 4)" in _page_outside_plotly(page)


def test_the_winner_shows_its_noise_floor_and_how_it_was_chosen() -> None:
    record = make_record([make_trial(0, C, 0.89), make_trial(1, C, 0.9)])
    page = render(
        record,
        [
            make_retrain(1, 0.80, seed=1),
            make_retrain(1, 0.84, seed=0),
            make_retrain(0, 0.90, seed=1),
            make_retrain(0, 0.92, seed=0),
            make_retrain(0, 0.91, seed=2),
        ],
    )
    floor = re.search(r"<th>Noise floor</th><td>([^<]*)</td>", page)
    assert floor is not None
    assert floor.group(1).startswith("test accuracy varies by 0.0082 (std; range 0.0200)")
    assert "the search&#x27;s two best trials differ by 0.0100 in val_accuracy" in floor.group(1)
    chosen = re.search(r"<th>Chosen</th><td>([^<]*)</td>", page)
    assert chosen is not None
    assert "best mean test accuracy of 2 retrained trials (#0 0.9100, #1 0.8200)" in (
        chosen.group(1)
    )
    assert "the search ranked #1 first" in chosen.group(1)
    one_seed = render(record, [make_retrain(1, 0.84)])
    assert "Noise floor" not in one_seed and "<th>Chosen</th>" not in one_seed
