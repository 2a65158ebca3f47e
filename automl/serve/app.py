"""The FastAPI app: JSON API under `/api/`, the predict endpoint, and the pages.

Reads go through `StudyStore` (read-only, as `automl show` reads); writes happen only in jobs
(child processes running `automl search` / `retrain` / `export`). Every mutating call and every
predict call needs the token when one is configured (always, off loopback).
"""

from __future__ import annotations

import contextlib
import queue
import tempfile
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from pydantic import BaseModel, Field

from automl import __version__
from automl.errors import AutoMLError
from automl.serve import pages
from automl.serve.config import MAX_FILES, ServeConfig
from automl.serve.jobs import Job, JobManager
from automl.serve.optuna_ui import PREFIX as OPTUNA_PREFIX
from automl.serve.optuna_ui import OptunaDashboard
from automl.serve.security import check_image, check_token, inside
from automl.storage.records import StudyRecord, TrialState, counts_json
from automl.storage.urls import check_study_name, redact_text


class SearchRequest(BaseModel):
    """A search to start: a space file inside `--spaces`, and the usual settings."""

    space: str = Field(description="a space file inside --spaces, e.g. cnn.py")
    study: str | None = Field(default=None, description="default: the space file's name")
    trials: int = Field(default=20, ge=1, le=100_000)
    epochs: int | None = Field(default=None, ge=1, le=10_000)
    workers: int | None = Field(default=None, ge=1, le=64)
    data: str | None = Field(default=None, description="digits, or a data source on the server")
    executor: str = Field(default="keras", pattern="^(keras|function)$")


class ExportRequest(BaseModel):
    """An export of a study's winner into `--models/<name>`."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
    formats: str = Field(default="keras", pattern=r"^[a-z,]+$")


def create_app(config: ServeConfig) -> FastAPI:
    """The service for `config` (checked: see `ServeConfig.check`)."""
    from automl.storage.store import StudyStore

    jobs = JobManager(config.storage, config.jobs)
    predictors = _Predictors()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(jobs.shutdown)

    app = FastAPI(
        title="automl",
        version=__version__,
        description="Studies, reports, search jobs and predictions of automl.",
        lifespan=lifespan,
    )
    app.state.jobs = jobs
    app.state.predictors = predictors

    def token(request: Request) -> None:
        check_token(request, config.token)

    opened: list[StudyStore] = []

    def store() -> StudyStore:
        """One store for the server's reads (its engine pools connections); opened when the
        store exists (a new server may start before any search)."""
        if not opened:
            opened.append(StudyStore(config.storage))
        return opened[0]

    def record(name: str) -> StudyRecord:
        try:
            check_study_name(name)
            return store().record(name)
        except AutoMLError as exc:
            raise HTTPException(404, redact_text(str(exc), config.storage)) from None

    @app.exception_handler(AutoMLError)
    async def automl_error(request: Request, exc: AutoMLError) -> JSONResponse:
        return JSONResponse(
            {"detail": redact_text(str(exc), config.storage)},
            status_code=400 if exc.exit_code == 2 else 500,
        )

    # -- the JSON API -----------------------------------------------------------------------

    @app.get("/api/studies")
    def api_studies() -> list[dict[str, Any]]:
        """Every study: trials by state, best value, last update, and whether a job runs it."""
        try:
            summaries = store().summaries()
        except AutoMLError as exc:
            if "no study store" in str(exc):
                return []
            raise
        busy = {j.study for j in jobs.running()}
        return [
            {
                **s.to_json(),
                "running": s.counts.get(TrialState.RUNNING, 0) > 0 or s.name in busy,
            }
            for s in summaries
        ]

    @app.get("/api/studies/{name}")
    def api_study(name: str) -> dict[str, Any]:
        """A study's progress: counts, best trial, metric, and the jobs running it."""
        study = record(name)
        best = study.best()
        return {
            "name": study.name,
            "metric": study.metric,
            "direction": study.direction,
            "counts": counts_json(study.counts()),
            "finished": study.finished,
            "best": best.to_json() if best else None,
            "running": [t.to_json() for t in study.trials if t.state is TrialState.RUNNING],
            "jobs": [j.to_json() for j in jobs.jobs.values() if j.study == name],
        }

    @app.get("/api/studies/{name}/trials")
    def api_trials(name: str, state: TrialState | None = None) -> list[dict[str, Any]]:
        """The leaderboard (ranked), optionally one state only."""
        study = record(name)
        ranked = study.ranked()
        return [t.to_json() for t in ranked if state is None or t.state is state]

    @app.get("/api/studies/{name}/best")
    def api_best(name: str) -> dict[str, Any]:
        best = record(name).best()
        if best is None:
            raise HTTPException(404, f"study {name!r} has no complete trial yet")
        return best.to_json()

    @app.get("/api/studies/{name}/report", response_class=HTMLResponse)
    def api_report(name: str) -> str:
        """The study's full HTML report, rendered now."""
        from automl.reports.render import render_report

        study = record(name)
        tables = store().tables()
        try:
            retrains = tables.retrains(name)
        finally:
            tables.close()
        return render_report(study, retrains, generated=datetime.now(), storage=store().shown_url)

    @app.get("/api/studies/{name}/exports")
    def api_exports(name: str) -> list[dict[str, Any]]:
        """The study's exports, newest first (folder, formats, model card)."""
        record(name)
        tables = store().tables()
        try:
            exports = tables.exports(name)
        finally:
            tables.close()
        return [
            {
                "trial": e.trial,
                "source": e.source,
                "directory": e.directory,
                "formats": list(e.formats),
                "created": e.created.isoformat(),
                "card": e.card,
            }
            for e in exports
        ]

    @app.get("/api/spaces")
    def api_spaces() -> list[str]:
        """The space files a search may run (inside --spaces)."""
        root = config.spaces.resolve()
        return sorted(
            str(p.relative_to(root))
            for p in root.rglob("*.py")
            if p.is_file() and p.resolve().is_relative_to(root) and not p.name.startswith("_")
        )

    @app.get("/api/jobs")
    def api_jobs() -> list[dict[str, object]]:
        return [j.to_json() for j in jobs.jobs.values()]

    @app.post("/api/jobs", status_code=201, dependencies=[Depends(token)])
    async def api_start_search(request: SearchRequest) -> dict[str, object]:
        """Start a search of a space file inside --spaces (resumes its study if it exists)."""
        space = inside(config.spaces, request.space, "space file")
        if space.suffix != ".py" or not space.is_file():
            raise HTTPException(404, f"no space file {request.space!r} in the served folder")
        study = request.study or space.stem
        _check_name(study)
        if jobs.running(study):
            raise HTTPException(409, f"a job already runs study {study!r}; stop it first")
        arguments = ["search", str(space), "--study", study, "--trials", str(request.trials)]
        for flag, value in (
            ("--epochs", request.epochs),
            ("--workers", request.workers),
            ("--data", request.data),
        ):
            if value is not None:
                arguments += [flag, str(value)]
        if request.executor != "keras":
            arguments += ["--executor", request.executor]
        # Started here, on the server's main thread (see automl.lifetime).
        return jobs.start("search", study, arguments).to_json()

    @app.get("/api/jobs/{number}")
    def api_job(number: int) -> dict[str, object]:
        return _job(jobs, number).to_json()

    @app.get("/api/jobs/{number}/log", response_class=PlainTextResponse)
    def api_job_log(number: int) -> str:
        return redact_text(_job(jobs, number).log_tail(), config.storage)

    @app.post("/api/jobs/{number}/stop", dependencies=[Depends(token)])
    def api_stop(number: int) -> dict[str, object]:
        """Stop a job as Ctrl-C would: a search re-queues its running trials."""
        job = _job(jobs, number)
        jobs.stop(job)
        return job.to_json()

    @app.post("/api/studies/{name}/retrain", status_code=201, dependencies=[Depends(token)])
    async def api_retrain(name: str) -> dict[str, object]:
        """Retrain the study's winner on train + val and score it on the test split (a job)."""
        record(name)
        if jobs.running(name):
            raise HTTPException(409, f"a job already runs study {name!r}; wait for it")
        return jobs.start("retrain", name, ["retrain", name]).to_json()

    @app.post("/api/studies/{name}/export", status_code=201, dependencies=[Depends(token)])
    async def api_export(name: str, request: ExportRequest) -> dict[str, object]:
        """Export the study's winner into --models/<name> (a job); predict serves it then."""
        record(name)
        config.models.mkdir(parents=True, exist_ok=True)
        output = config.models.resolve() / request.name
        arguments = ["export", name, "-o", str(output), "--format", request.formats]
        return jobs.start("export", name, arguments).to_json()

    @app.get("/api/models")
    def api_models() -> list[dict[str, Any]]:
        """The export folders inside --models that predict serves."""
        from automl.deploy.card import read_card

        found = []
        root = config.models.resolve()
        for folder in sorted(root.iterdir()) if root.is_dir() else ():
            card = read_card(folder) if folder.is_dir() else None
            if card is not None and folder.resolve().is_relative_to(root):
                found.append(
                    {
                        "name": folder.name,
                        "study": card.get("study"),
                        "trial": card.get("trial"),
                        "classes": card.get("class_names"),
                        "formats": sorted(card.get("files", {})),
                    }
                )
        return found

    @app.post("/models/{name}/predict", dependencies=[Depends(token)])
    async def predict(
        name: str, files: Annotated[list[UploadFile], File(description="images (repeated)")]
    ) -> dict[str, Any]:
        """Classes and confidences of each uploaded image, by the export `name` in --models."""
        folder = inside(config.models, name, "model")
        if len(files) > MAX_FILES:
            raise HTTPException(413, f"at most {MAX_FILES} files per request")
        with tempfile.TemporaryDirectory(prefix="automl-predict-") as scratch:
            paths: list[str | None] = []
            errors: dict[int, str] = {}
            for index, upload in enumerate(files):
                data = await upload.read(config.max_upload_bytes + 1)
                if not data:
                    errors[index] = "empty file"
                elif len(data) > config.max_upload_bytes:
                    errors[index] = f"larger than {config.max_upload_bytes:,} bytes"
                else:
                    path = Path(scratch) / f"upload-{index}"  # never a name from the request
                    path.write_bytes(data)
                    why = check_image(path, config.max_upload_pixels)
                    if why is not None:
                        errors[index] = why
                    else:
                        paths.append(str(path))
                        continue
                paths.append(None)
            ready = [p for p in paths if p is not None]
            try:
                results = await run_in_threadpool(predictors.predict, folder, ready)
            except AutoMLError as exc:
                raise HTTPException(400, redact_text(str(exc), config.storage)) from None
        out = []
        results_iter = iter(results)
        for index, upload in enumerate(files):
            entry: dict[str, Any] = {"file": upload.filename}
            if index in errors:
                entry["error"] = errors[index]
            else:
                result = next(results_iter)
                if result.error:
                    entry["error"] = result.error
                else:
                    entry["top"] = [{"class": c, "confidence": p} for c, p in result.top]
            out.append(entry)
        return {"model": name, "predictions": out}

    # -- pages -----------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def page_studies() -> str:
        return pages.studies_page(api_studies(), api_spaces())

    @app.get("/studies/{name}", response_class=HTMLResponse)
    def page_study(name: str) -> str:
        study = record(name)
        return pages.study_page(study, [j.to_json() for j in jobs.jobs.values() if j.study == name])

    @app.get("/jobs/{number}", response_class=HTMLResponse)
    def page_job(number: int) -> str:
        job = _job(jobs, number)
        return pages.job_page(job.to_json(), redact_text(job.log_tail(), config.storage))

    dashboard = OptunaDashboard(config.storage)

    @app.get("/optuna", include_in_schema=False)
    def optuna_dashboard_root() -> RedirectResponse:
        return RedirectResponse(f"{OPTUNA_PREFIX}/dashboard")

    @app.api_route(
        "/optuna/{path:path}",
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    def optuna_dashboard(request: Request, path: str) -> Response:
        """Optuna's own dashboard on the same store, read-only (when it is installed)."""
        if path == "":
            return RedirectResponse(f"{OPTUNA_PREFIX}/dashboard")
        return dashboard.handle(request, path)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app


def _job(jobs: JobManager, number: int) -> Job:
    job = jobs.jobs.get(number)
    if job is None:
        raise HTTPException(404, f"no job {number}")
    return job


def _check_name(name: str) -> None:
    try:
        check_study_name(name)
    except AutoMLError as exc:
        raise HTTPException(400, str(exc)) from None


class _Predictors:
    """Export folders loaded once and kept warm, each with its batcher."""

    def __init__(self) -> None:
        self._batchers: dict[Path, _Batcher] = {}
        self._lock = threading.Lock()

    def predict(self, folder: Path, paths: list[str]) -> list[Any]:
        from automl.deploy.predict import Predictor

        with self._lock:
            batcher = self._batchers.get(folder)
            if batcher is None:
                batcher = self._batchers[folder] = _Batcher(Predictor(folder))
        return batcher.predict(paths)


class _Batcher:
    """Requests decode their own images (in parallel, in the server's threads); one thread per
    model then runs everything waiting as one batch, up to `BATCH_SIZE` images, so concurrent
    requests share a forward pass instead of queueing for one each.

    Attributes:
        batches: forward passes run. images: images predicted. largest: the largest batch.
    """

    def __init__(self, predictor: Any) -> None:
        from automl.deploy.predict import BATCH_SIZE

        self.predictor = predictor
        # Warm: every batch size the model will see (powers of two, see the Keras format)
        # is traced now, not in the middle of someone's request.
        shape = (predictor.height, predictor.width, predictor.channels)
        size = 1
        while size <= BATCH_SIZE:
            predictor.predict_arrays(np.zeros((size, *shape), dtype=np.float32))
            size *= 2
        self.batches = self.images = self.largest = 0
        self._queue: queue.Queue[tuple[list[np.ndarray], Future[np.ndarray]]] = queue.Queue()
        self._carry: tuple[list[np.ndarray], Future[np.ndarray]] | None = None
        threading.Thread(target=self._run, name="automl-predict", daemon=True).start()

    def predict(self, paths: list[str], top_k: int = 3) -> list[Any]:
        from automl.deploy.predict import Prediction

        loaded = self.predictor.load_files(paths)
        ready = [x for x in loaded if not isinstance(x, Prediction)]
        rows: Any = iter(())
        if ready:
            future: Future[np.ndarray] = Future()
            self._queue.put((ready, future))
            rows = iter(future.result())
        return [
            item if isinstance(item, Prediction) else self.predictor.ranked(path, next(rows), top_k)
            for path, item in zip(paths, loaded, strict=True)
        ]

    def _run(self) -> None:
        from automl.deploy.predict import BATCH_SIZE

        while True:
            first = self._carry or self._queue.get()
            self._carry = None
            waiting, count = [first], len(first[0])
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if count + len(job[0]) > BATCH_SIZE:
                    self._carry = job  # first in the next batch
                    break
                waiting.append(job)
                count += len(job[0])
            try:
                rows = self.predictor.predict_arrays(
                    np.stack([x for arrays, _ in waiting for x in arrays])
                )
            except Exception as exc:  # every waiting request gets the error
                for _, future in waiting:
                    future.set_exception(exc)
                continue
            self.batches += 1
            self.images += count
            self.largest = max(self.largest, count)
            start = 0
            for arrays, future in waiting:
                future.set_result(rows[start : start + len(arrays)])
                start += len(arrays)


__all__ = ["create_app"]
