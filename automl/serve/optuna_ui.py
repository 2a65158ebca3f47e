"""Optuna's own dashboard under `/optuna`, read-only, on the server's store.

optuna-dashboard is a Bottle (WSGI) app written to be served from a site's root: its page loads
`/static/bundle.js`, and the bundle calls `/api/...` (which is our API's prefix too), links to
`/dashboard/...` and `/csv/...`. Under `/optuna` each request is passed to that app with the
prefix taken off, and the three root-relative places are moved under the prefix: the page's
script tag, and in the bundle the API client's base URL (the dashboard's own JupyterLab
extension sets it the same way), the router's prefix and the CSV links. A dashboard version whose
bundle does not have those places is refused with the fix, never served half-working.

Only GET and HEAD reach it: its renames, deletions, notes and `tell` are refused here, so a
study's trials change only through searches.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import io
import re
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Response
from fastapi.responses import RedirectResponse

PREFIX = "/optuna"
READ_METHODS = ("GET", "HEAD")

# (what, pattern, replacement): the root-relative places of the dashboard's bundle.
_BUNDLE_PATCHES = (
    (
        "the API client's base URL",
        re.compile(rb'(this\.baseURL=\(.{1,200}?\)\(null!=(\w+)\?\2:)""\)'),
        rb'\1"' + PREFIX.encode() + rb'")',
    ),
    (
        "the router's prefix",
        re.compile(rb'url_prefix:"/dashboard"'),
        b'url_prefix:"/optuna/dashboard"',
    ),
    ("the CSV links", re.compile(rb"`/csv/"), b"`/optuna/csv/"),
)
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "content-encoding"}


def installed() -> bool:
    """Whether optuna-dashboard can be imported here (checked without importing it)."""
    return importlib.util.find_spec("optuna_dashboard") is not None


class Unsupported(Exception):
    """This optuna-dashboard's page cannot be moved under `/optuna`."""


def patch_bundle(bundle: bytes) -> bytes:
    """The dashboard's bundle with its root-relative places moved under `/optuna`.

    Raises:
        Unsupported: a place is not where this version of the bundle is expected to have it.
    """
    for what, pattern, replacement in _BUNDLE_PATCHES:
        bundle, count = pattern.subn(replacement, bundle)
        if count == 0:
            raise Unsupported(what)
    return bundle


class OptunaDashboard:
    """optuna-dashboard's WSGI app on `storage_url`, opened at its first request."""

    def __init__(self, storage_url: str) -> None:
        self._storage_url = storage_url
        self._lock = threading.Lock()
        self._app: Any = None
        self._bundle: tuple[bytes, bytes] | None = None  # (plain, gzipped)

    def handle(self, request: Request, path: str) -> Response:
        """The response to `request` for `PREFIX/path`."""
        if request.method not in READ_METHODS:
            raise HTTPException(
                405,
                detail="Optuna's dashboard is read-only under /optuna: change a study with "
                "automl (search, retrain, export) or run optuna-dashboard on the store yourself",
                headers={"Allow": ", ".join(READ_METHODS)},
            )
        if not installed():
            raise HTTPException(
                501,
                detail="Optuna's dashboard is not installed on this server: pip install "
                "'optuna-dashboard>=0.21,<0.22' and restart automl serve",
            )
        path = "/" + path.lstrip("/")
        try:
            if path == "/static/bundle.js":
                return self._bundle_response(request)
            status, headers, body = self._call(request, path)
        except Unsupported as exc:
            version = importlib.metadata.version("optuna-dashboard")
            raise HTTPException(
                501,
                detail=f"optuna-dashboard {version} cannot be served under /optuna ({exc} is "
                "not where automl expects it): pip install 'optuna-dashboard>=0.21,<0.22', or "
                "run optuna-dashboard on the store on its own port",
            ) from None
        if path.startswith("/dashboard") and headers.get("content-type", "").startswith(
            "text/html"
        ):
            body = body.replace(b'src="/static/', b'src="' + PREFIX.encode() + b"/static/")
        if "location" in headers:
            moved = urlsplit(headers.pop("location")).path
            return RedirectResponse(PREFIX + moved, status_code=status)
        if request.method == "HEAD":
            body = b""
        return Response(body, status_code=status, headers=headers)

    def _wsgi(self) -> Any:
        with self._lock:
            if self._app is None:
                import optuna_dashboard

                from automl.storage.store import StudyStore

                self._app = optuna_dashboard.wsgi(StudyStore(self._storage_url).storage)
            return self._app

    def _call(self, request: Request, path: str) -> tuple[int, dict[str, str], bytes]:
        """One request through the WSGI app (buffered: its answers are JSON and small files).

        Accept-Encoding is not passed on, so every answer comes back plain and can be rewritten.
        """
        app = self._wsgi()
        server = request.url.hostname or "127.0.0.1"
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            # WSGI carries the path as latin-1 text of its UTF-8 bytes.
            "PATH_INFO": path.encode("utf-8").decode("latin-1"),
            "QUERY_STRING": request.url.query,
            "SERVER_NAME": server,
            "SERVER_PORT": str(request.url.port or 80),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": request.headers.get("host", server),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": request.url.scheme,
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        started: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = {
                name.lower(): value for name, value in headers if name.lower() not in _HOP_BY_HOP
            }
            return lambda data: None

        result = app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return started["status"], started["headers"], body

    def _bundle_response(self, request: Request) -> Response:
        with self._lock:
            if self._bundle is None:
                import optuna_dashboard

                plain = patch_bundle(
                    (Path(optuna_dashboard.__file__).parent / "public" / "bundle.js").read_bytes()
                )
                self._bundle = (plain, gzip.compress(plain, compresslevel=6))
            plain, zipped = self._bundle
        headers = {"content-type": "application/javascript", "cache-control": "max-age=3600"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["content-encoding"] = "gzip"
            body = zipped
        else:
            body = plain
        return Response(b"" if request.method == "HEAD" else body, headers=headers)
