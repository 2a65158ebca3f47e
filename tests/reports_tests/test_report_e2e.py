"""`automl report` end to end: from a real study, and in a real browser with the network off."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from automl.cli import main
from automl.reports.render import render_report
from automl.search import SearchConfig, run_search
from automl.storage.records import TrialState

from ..conftest import REPO
from ..search_tests.test_search import SPACE, fake_gpus
from .records import make_record, make_retrain, make_trial

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real study made by the scheduler (function executor: no TensorFlow)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOML_STORAGE", raising=False)
    (tmp_path / "space.py").write_text(SPACE.read_text())
    run_search(
        SearchConfig(
            space="space.py",
            trials=12,
            executor="function",
            epochs=9,
            study="demo",
            sampler="random",
            workers=2,
        ),
        gpu_probe=fake_gpus(0),
        cpus=2,
    )
    yield tmp_path


def test_optuna_ped_anova_judges_the_parameters_every_trial_has(tmp_path: Path) -> None:
    """On a real Optuna study in SQLite: the parameter that drives the objective ranks first,
    and a conditional one (absent from some trials) is named as left out."""
    import optuna

    from automl.reports.report import optuna_importances
    from automl.storage.store import StudyStore

    url = f"sqlite:///{tmp_path / 'automl.db'}"
    study = optuna.create_study(study_name="ped", storage=url, direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        matters = trial.suggest_float("matters", 0.0, 1.0)
        trial.suggest_float("noise", 0.0, 1.0)
        if trial.suggest_categorical("branch", ["a", "b"]) == "a":
            trial.suggest_int("conditional", 1, 4)
        return matters

    study.optimize(objective, n_trials=40)
    result = optuna_importances(StudyStore(url), "ped")
    assert result.values[0].name == "matters" and result.values[0].value > 0.5
    assert {i.name for i in result.values} == {"matters", "noise", "branch"}
    assert "PED-ANOVA" in result.title and "left out: conditional" in result.title
    few = optuna.create_study(study_name="few", storage=url)
    few.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert "at least 10 complete trials" in optuna_importances(StudyStore(url), "few").reason


def test_report_leaderboard_matches_show(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "demo"]) == 0
    shown = [
        int(n) for n in re.findall(r"^│ +\d+ │ +(\d+) │", capsys.readouterr().out, re.MULTILINE)
    ]
    assert main(["report", "demo"]) == 0
    assert "Report: " in capsys.readouterr().out
    page = (study / "runs" / "demo" / "report.html").read_text()
    ranked = [
        int(n)
        for n in re.findall(
            r'<tr data-state="\w+"><td data-value="\d+">\d+</td><td data-value="(\d+)">', page
        )
    ]
    assert ranked == shown and len(ranked) == 12


def test_report_output_errors(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "demo", "-o", str(study / "out.html")]) == 0
    assert (study / "out.html").is_file()
    assert main(["report", "demo", "-o", str(study / "missing" / "r.html")]) == 2
    assert "the folder" in capsys.readouterr().err
    assert main(["report", "nope"]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err


def test_report_never_writes_the_store(study: Path) -> None:
    database = study / "runs" / "automl.db"
    before = database.read_bytes()
    assert main(["report", "demo", "-o", str(study / "r.html")]) == 0
    assert database.read_bytes() == before


def _open_in_browser(path: Path, screenshot: Path) -> dict[str, object]:
    if CHROMIUM is None:
        if os.environ.get("AUTOML_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (CI installs Debian's chromium package)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.resolve().as_uri())
        page.wait_for_function("window.automlFigures !== undefined", timeout=30000)
        figures = page.evaluate("window.automlFigures")
        rows = page.locator("table.board tbody tr[data-state]").count()
        drawn = page.locator("[data-figure].js-plotly-plot:has(svg.main-svg)").count()
        page.select_option("#state-filter", "complete")
        visible = page.evaluate(
            "Array.from(document.querySelectorAll('tr[data-state]'))"
            ".filter(tr => tr.style.display !== 'none').length"
        )
        page.select_option("#state-filter", "")
        page.locator("table.board thead th").nth(3).click()
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return {
        "figures": figures,
        "rows": rows,
        "drawn": drawn,
        "errors": errors,
        "requests": [r for r in requests if not r.startswith("file:")],
        "visible_complete": visible,
    }


def test_report_in_a_real_browser_offline(study: Path) -> None:
    assert main(["report", "demo"]) == 0
    result = _open_in_browser(
        study / "runs" / "demo" / "report.html", ARTIFACTS / "report-search.png"
    )
    assert result["errors"] == []
    assert result["requests"] == []
    assert result["rows"] == 12
    figures = result["figures"]
    assert isinstance(figures, dict) and figures["failed"] == [] and figures["rendered"] >= 5
    assert result["drawn"] == figures["rendered"]
    from automl.storage.store import StudyStore

    record = StudyStore(f"sqlite:///{study / 'runs' / 'automl.db'}").record("demo")
    assert result["visible_complete"] == record.counts()[TrialState.COMPLETE]


def test_winner_section_in_a_real_browser(tmp_path: Path) -> None:
    trials = [make_trial(i, TrialState.COMPLETE, 0.5 + i / 20) for i in range(6)]
    page = render_report(
        make_record(trials),
        [make_retrain(5, 0.91), make_retrain(5, 0.9, source="checkpoint")],
        generated=make_trial(0, TrialState.COMPLETE).started,  # type: ignore[arg-type]
        storage="sqlite:///x.db",
    )
    path = tmp_path / "report.html"
    path.write_text(page)
    result = _open_in_browser(path, ARTIFACTS / "report-winner.png")
    assert result["errors"] == [] and result["requests"] == []
    figures = result["figures"]
    assert isinstance(figures, dict) and figures["failed"] == []
    assert result["drawn"] == figures["rendered"] >= 7  # search figures + confusion + curves
