"""`automl serve`'s API with the real app (FastAPI's TestClient): every endpoint, the token,
bad uploads, paths that try to leave --spaces / --models, and jobs that run real searches."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from automl.errors import UsageError
from automl.serve import ServeConfig, create_app
from automl.serve.config import is_loopback
from benchmarks.b11_serve import serve
from benchmarks.common import children

from ..conftest import REPO
from ..data_tests.lying_images import write_bomb, write_not_an_image, write_truncated
from ..deploy_tests.test_deploy import PLAIN
from ..test_trial_cli import automl

TOKEN = "a-test-token-that-is-long-enough"
FUNCTION_SPACE = (REPO / "tests" / "search_tests" / "function_space.py").read_text()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder with a space folder, a finished function study and a Keras study
    exported (1 trial, 1 epoch on digits) into models/digits."""
    folder = tmp_path_factory.mktemp("served")
    (folder / "spaces").mkdir()
    (folder / "spaces" / "fn.py").write_text(FUNCTION_SPACE)
    (folder / "spaces" / "plain.py").write_text(PLAIN)
    done = automl(
        "search", "spaces/fn.py", "--trials", "4", "--workers", "1", "--executor", "function",
        "--epochs", "3", "--quiet", cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    keras = automl(
        "search", "spaces/plain.py", "--trials", "1", "--workers", "1", "--epochs", "1",
        "--no-retrain", "--quiet", cwd=folder,
    )  # fmt: skip
    assert keras.returncode == 0, keras.stdout[-2000:] + keras.stderr[-2000:]
    (folder / "models").mkdir()
    exported = automl("export", "plain", "-o", "models/digits", "--format", "keras", cwd=folder)
    assert exported.returncode == 0, exported.stderr
    return folder


def make_client(folder: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> TestClient:
    monkeypatch.chdir(folder)
    config = ServeConfig(
        storage=f"sqlite:///{folder / 'runs' / 'automl.db'}",
        spaces=folder / "spaces",
        models=folder / "models",
        jobs=folder / "runs" / "serve-jobs",
        **settings,
    ).check()
    return TestClient(create_app(config))


@pytest.fixture
def client(served: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    return make_client(served, monkeypatch, token=TOKEN)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_studies_trials_best_and_report(client: TestClient) -> None:
    studies = {s["name"]: s for s in client.get("/api/studies").json()}
    assert set(studies) == {"fn", "plain"}
    assert studies["fn"]["counts"]["complete"] + studies["fn"]["counts"]["pruned"] == 4
    study = client.get("/api/studies/fn").json()
    assert study["finished"] == 4 and study["metric"] == "score"
    trials = client.get("/api/studies/fn/trials").json()
    assert len(trials) == 4 and trials[0]["number"] == study["best"]["number"]
    complete = client.get("/api/studies/fn/trials", params={"state": "complete"}).json()
    assert complete and all(t["state"] == "complete" for t in complete)
    assert client.get("/api/studies/fn/best").json()["value"] == study["best"]["value"]
    report = client.get("/api/studies/fn/report")
    assert report.status_code == 200 and "<html" in report.text[:500].lower()
    assert client.get("/api/spaces").json() == ["fn.py", "plain.py"]
    assert client.get("/api/models").json()[0]["name"] == "digits"
    exports = client.get("/api/studies/plain/exports").json()
    assert exports[0]["formats"] == ["keras"] and exports[0]["directory"].endswith("digits")
    assert client.get("/api/studies/fn/exports").json() == []
    assert client.get("/api/studies/nope").status_code == 404
    assert client.get("/api/studies/..%2F..%2Fetc").status_code == 404
    assert client.get("/api/studies/fn/trials", params={"state": "bogus"}).status_code == 422


def test_pages_render_what_they_show_at_once(client: TestClient) -> None:
    home = client.get("/")
    assert home.status_code == 200 and "fn.py" in home.text and "Start a search" in home.text
    study = client.get("/studies/fn")
    assert study.status_code == 200 and "Leaderboard" in study.text and "full report" in study.text
    assert TOKEN not in home.text + study.text
    assert client.get("/docs").status_code == 200  # OpenAPI


def test_optuna_dashboard_is_mounted_read_only_on_the_same_store(client: TestClient) -> None:
    pytest.importorskip("optuna_dashboard")
    moved = client.get("/optuna", follow_redirects=False)
    assert moved.status_code in (302, 307) and moved.headers["location"] == "/optuna/dashboard"
    page = client.get("/optuna/dashboard/studies/1")
    assert page.status_code == 200 and 'src="/optuna/static/bundle.js"' in page.text
    bundle = client.get("/optuna/static/bundle.js")
    # Its API calls, links and CSV downloads all stay under /optuna (ours is at /api).
    assert bundle.status_code == 200 and b'url_prefix:"/optuna/dashboard"' in bundle.content
    assert b'url_prefix:"/dashboard"' not in bundle.content and b"`/csv/" not in bundle.content
    listed = client.get("/optuna/api/studies").json()["study_summaries"]
    ids = {s["study_name"]: s["study_id"] for s in listed}
    assert set(ids) == {"fn", "plain"}
    detail = client.get(f"/optuna/api/studies/{ids['fn']}", params={"after": 0}).json()
    assert len(detail["trials"]) == 4
    assert client.get(f"/optuna/csv/{ids['fn']}").text.count("\n") >= 5
    # Read-only: renames, deletions, notes and tells are refused, with or without the token.
    fn = ids["fn"]
    for method, url, body in [
        ("POST", f"/optuna/api/studies/{fn}/rename", {"study_name": "renamed"}),
        ("DELETE", f"/optuna/api/studies/{fn}", {"remove_associated_artifacts": False}),
        ("PUT", f"/optuna/api/studies/{fn}/note", {"version": 1, "body": "x"}),
        ("POST", f"/optuna/api/trials/{detail['trials'][0]['trial_id']}/tell", {"state": "Fail"}),
        ("POST", "/optuna/api/studies", {"study_name": "new", "directions": ["maximize"]}),
    ]:
        refused = client.request(method, url, json=body, headers=AUTH)
        assert refused.status_code == 405 and "read-only" in refused.json()["detail"]
    assert client.get("/api/studies/fn").json()["finished"] == 4
    assert {s["name"] for s in client.get("/api/studies").json()} == {"fn", "plain"}


def test_optuna_dashboard_refuses_clearly_where_it_cannot_be_served(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automl.serve import optuna_ui

    with pytest.raises(optuna_ui.Unsupported, match="base URL"):
        optuna_ui.patch_bundle(b"const api = new Client(); url_prefix:'/dashboard'")
    monkeypatch.setattr(optuna_ui, "installed", lambda: False)
    missing = client.get("/optuna/dashboard")
    assert missing.status_code == 501 and "pip install" in missing.json()["detail"]


def test_mutating_and_predict_calls_need_the_token(client: TestClient) -> None:
    body = {"space": "fn.py", "trials": 4, "executor": "function"}
    assert client.post("/api/jobs", json=body).status_code == 401
    wrong = client.post("/api/jobs", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and TOKEN not in wrong.text
    assert client.post("/api/studies/fn/retrain").status_code == 401
    assert client.post("/api/studies/fn/export", json={"name": "x"}).status_code == 401
    assert client.post("/api/jobs/1/stop").status_code == 401
    image = _png(np.zeros((8, 8), dtype=np.uint8))
    assert client.post("/models/digits/predict", files={"files": image}).status_code == 401
    assert client.get("/api/studies").status_code == 200  # reading needs no token


def test_a_bind_off_loopback_needs_a_token(served: Path, tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    with pytest.raises(UsageError, match="--token-file"):
        ServeConfig(storage="sqlite:///x.db", spaces=served / "spaces", host="0.0.0.0").check()
    result = automl("serve", "--host", "0.0.0.0", "--spaces", "spaces", cwd=served)
    assert result.returncode == 2 and "--token-file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    short = tmp_path / "token"
    short.write_text("short\n")
    result = automl("serve", "--token-file", str(short), cwd=served)
    assert result.returncode == 2 and "16 characters" in result.stderr


def test_paths_never_leave_their_folders(client: TestClient, served: Path, tmp_path: Path) -> None:
    outside = tmp_path / "evil.py"
    outside.write_text(FUNCTION_SPACE)
    link = served / "spaces" / "link.py"
    link.symlink_to(outside)
    model_link = served / "models" / "out"
    model_link.symlink_to(tmp_path)
    try:
        for space in ("../spaces/fn.py", "/etc/passwd", str(outside), "link.py", "", "~/x.py"):
            response = client.post("/api/jobs", json={"space": space}, headers=AUTH)
            assert response.status_code in (404, 422), (space, response.text)
        assert "link.py" not in client.get("/api/spaces").json()
        image = {"files": _png(np.zeros((8, 8), dtype=np.uint8))}
        for model in ("..", "out", "%2E%2E%2Fspaces"):
            response = client.post(f"/models/{model}/predict", files=image, headers=AUTH)
            assert response.status_code == 404, (model, response.text)
        export = client.post("/api/studies/fn/export", json={"name": "../x"}, headers=AUTH)
        assert export.status_code == 422
    finally:
        link.unlink()
        model_link.unlink()


def test_predict_classes_and_every_bad_upload(
    served: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = make_client(served, monkeypatch, token=TOKEN, max_upload_bytes=4096)
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = [np.round(digits.images[i] * 255 / 16).astype(np.uint8) for i in range(3)]
    truncated = write_truncated(tmp_path / "t.png")
    junk = write_not_an_image(tmp_path / "j.png")
    bomb = write_bomb(tmp_path / "b.png")
    files = [
        ("files", ("zero.png", _png(images[0]), "image/png")),
        ("files", ("empty.png", b"", "image/png")),
        ("files", ("t.png", truncated.read_bytes(), "image/png")),
        ("files", ("j.png", junk.read_bytes(), "image/png")),
        ("files", ("big.png", os.urandom(5000), "image/png")),
        ("files", ("b.png", bomb.read_bytes(), "image/png")),
        ("files", ("../../etc/two.png", _png(images[2]), "image/png")),
    ]
    response = client.post("/models/digits/predict", files=files, headers=AUTH)
    assert response.status_code == 200, response.text
    out = response.json()["predictions"]
    assert [p["file"] for p in out] == [name for _, (name, _, _) in files]
    assert len(out[0]["top"]) == 3 and out[0]["top"][0]["class"] in {str(i) for i in range(10)}
    assert sum(t["confidence"] for t in out[0]["top"]) <= 1.0001
    assert out[1]["error"] == "empty file"
    assert "not" in out[2]["error"]  # truncated: not a readable image
    assert out[3]["error"] == "not an image"
    assert "larger than 4,096 bytes" in out[4]["error"]
    assert "pixels" in out[5]["error"]
    assert "top" in out[6]  # a name from the request is only echoed, never used as a path
    assert not list((served / "etc").glob("*")) if (served / "etc").exists() else True


def test_a_search_job_runs_is_stopped_and_resumes_from_the_cli(
    client: TestClient, served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"space": "fn.py", "study": "web", "trials": 3, "epochs": 2, "workers": 1,
            "executor": "function"}  # fmt: skip
    job = client.post("/api/jobs", json=body, headers=AUTH)
    assert job.status_code == 201, job.text
    number = job.json()["id"]
    state = _wait(client, number, {"finished", "failed"})
    assert state == "finished", client.get(f"/api/jobs/{number}/log").text
    assert client.get("/api/studies/web").json()["finished"] == 3
    assert "Study 'web'" in client.get(f"/api/jobs/{number}/log").text
    assert client.get(f"/jobs/{number}").status_code == 200
    # A slow one, stopped mid-way as Ctrl-C would: its running trial is re-queued.
    monkeypatch.setenv("AUTOML_TEST_DELAY", "1.0")
    slow = client.post("/api/jobs", json={**body, "trials": 6, "epochs": 9}, headers=AUTH).json()
    assert client.post("/api/jobs", json=body, headers=AUTH).status_code == 409  # one at a time
    deadline = time.monotonic() + 60
    while not client.get("/api/studies/web").json()["running"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    stopped = client.post(f"/api/jobs/{slow['id']}/stop", headers=AUTH)
    assert stopped.status_code == 200
    assert _wait(client, slow["id"], {"stopped", "failed", "finished"}) == "stopped"
    assert client.get("/api/studies/web").json()["counts"].get("running", 0) == 0
    monkeypatch.delenv("AUTOML_TEST_DELAY")
    resumed = automl(
        "search", "spaces/fn.py", "--study", "web", "--trials", "6", "--epochs", "2",
        "--workers", "1", "--executor", "function", "--quiet", cwd=served,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert client.get("/api/studies/web").json()["finished"] == 6


def test_a_killed_server_leaves_no_orphan_job(served: Path, tmp_path: Path) -> None:
    """`kill -9` of the server: its search job notices within a second, records its running
    trials as re-queued (as Ctrl-C would) and exits."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUTOML_TEST_DELAY": "1.0"}
    server, base = serve(served, env, "--spaces", "spaces")
    import httpx

    try:
        deadline = time.monotonic() + 60
        body = {"space": "fn.py", "study": "orphan", "trials": 5, "epochs": 9, "workers": 1,
                "executor": "function"}  # fmt: skip
        job = httpx.post(f"{base}/api/jobs", json=body, timeout=10).json()
        while not httpx.get(f"{base}/api/studies/orphan", timeout=5).json().get("running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        jobs = children(server.pid)
        assert jobs
    finally:
        server.kill()
        server.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in jobs):
        assert time.monotonic() < deadline, f"job {job['id']} outlived the server"
        time.sleep(0.2)
    from automl.storage.store import StudyStore

    record = StudyStore(f"sqlite:///{served / 'runs' / 'automl.db'}").record("orphan")
    assert not [t for t in record.trials if t.state.value == "running"]
    assert any(t.failure and "interrupted" in t.failure for t in record.trials)


def _wait(client: TestClient, number: int, states: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = client.get(f"/api/jobs/{number}").json()["state"]
        if state in states:
            return str(state)
        assert time.monotonic() < deadline, state
        time.sleep(0.2)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _alive(pid: int) -> bool:
    from automl.lifetime import process_alive

    return process_alive(pid)


def test_concurrent_predicts_share_batches_and_each_gets_its_own_answer(
    client: TestClient,
) -> None:
    """Requests arriving together are run as one forward pass; every request still gets the
    answer for its own images, the same as when it comes alone."""
    import threading

    from sklearn.datasets import load_digits

    digits = load_digits()
    images = [_png(np.round(digits.images[i] * 255 / 16).astype(np.uint8)) for i in range(16)]

    def ask(index: int) -> list[dict[str, Any]]:
        files = [("files", (f"{index}.png", images[index], "image/png"))]
        response = client.post("/models/digits/predict", files=files, headers=AUTH)
        assert response.status_code == 200, response.text
        return list(response.json()["predictions"][0]["top"])

    alone = [ask(i) for i in range(16)]
    together: dict[int, list[dict[str, Any]]] = {}
    threads = [
        threading.Thread(target=lambda i=i: together.__setitem__(i, ask(i))) for i in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(16):
        assert [t["class"] for t in together[i]] == [t["class"] for t in alone[i]]
        for a, b in zip(together[i], alone[i], strict=True):
            assert abs(a["confidence"] - b["confidence"]) < 1e-5
    batcher = next(iter(client.app.state.predictors._batchers.values()))  # type: ignore[attr-defined]
    assert batcher.images == 32 and 1 <= batcher.largest <= 16  # every image, in batches
