"""`automl serve` end to end in a real browser (Debian's Chromium, as the report test): open
the dashboard, start a tiny Keras search from the page, watch it finish live, open its report,
export the winner, and predict an image from the page."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.b11_serve import serve

from ..conftest import REPO
from ..deploy_tests.test_deploy import PLAIN

pytest.importorskip("fastapi")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "plain.py").write_text(PLAIN)
    process, base = serve(tmp_path, {**os.environ, "PYTHONPATH": str(REPO)})
    yield base
    process.terminate()
    process.wait(timeout=60)


def test_the_dashboard_from_search_to_prediction(server: str, tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("AUTOML_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (CI installs Debian's chromium package)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    from sklearn.datasets import load_digits

    digits = load_digits()
    image = tmp_path / "seven.png"
    pixels = np.round(digits.images[7] * 255 / 16).astype(np.uint8)
    Image.fromarray(pixels).save(image)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        errors: list[str] = []
        elsewhere: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith(server) else elsewhere.append(r.url))
        page.goto(server + "/")
        assert "Start a search" in page.content()
        page.select_option("select[name=space]", "plain.py")
        page.fill("input[name=trials]", "3")
        page.fill("input[name=epochs]", "1")
        page.fill("input[name=workers]", "1")
        page.click("#start button")
        page.wait_for_url("**/jobs/1")
        # The job page follows the search live until it ends (search, retrain, report).
        page.wait_for_function(
            "document.getElementById('state').textContent === 'finished'", timeout=300_000
        )
        assert "Report:" in page.locator("#log").text_content()
        page.goto(server + "/studies/plain")
        page.wait_for_function(
            "document.querySelectorAll('#board tbody tr').length === 3", timeout=30_000
        )
        assert "3 complete" in page.locator("#progress").text_content() or "pruned" in (
            page.locator("#progress").text_content()
        )
        report = browser.new_page()
        report.goto(server + "/api/studies/plain/report")
        report.wait_for_function("window.automlFigures !== undefined", timeout=30_000)
        assert report.evaluate("window.automlFigures.failed") == []
        report.close()
        # Optuna's own dashboard, on the same store, under /optuna.
        optuna = browser.new_page()
        optuna.on("pageerror", lambda e: errors.append(str(e)))
        optuna.on(
            "request", lambda r: None if r.url.startswith(server) else elsewhere.append(r.url)
        )
        optuna.goto(server + "/optuna")
        optuna.get_by_text(re.compile(r"^\d+\. plain$")).click(timeout=60_000)
        optuna.wait_for_selector("text=Best Trial", timeout=60_000)
        assert "/optuna/dashboard/studies/" in optuna.url
        optuna.close()
        page.fill("form input[name=name]", "digits")
        page.click("text=Export (Keras)")
        page.wait_for_url("**/jobs/2")
        page.wait_for_function(
            "document.getElementById('state').textContent === 'finished'", timeout=180_000
        )
        page.fill("input[name=model]", "digits")
        page.set_input_files("input[name=files]", str(image))
        page.click("button:has-text('Predict')")
        page.wait_for_function(
            "document.getElementById('predictions').textContent.length > 0", timeout=120_000
        )
        shown = page.locator("#predictions").text_content() or ""
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "serve-job.png"), full_page=True)
        browser.close()
    assert '"class"' in shown and "seven.png" in shown
    assert errors == [] and elsewhere == []
