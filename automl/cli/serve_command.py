"""`automl serve`: the dashboard, JSON API, search jobs and prediction endpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl.cli.common import EXIT_OK, add_storage_argument, storage_url

if TYPE_CHECKING:
    from rich.console import Console


def add_serve(commands: Any) -> None:
    command = commands.add_parser(
        "serve",
        help="the web dashboard, JSON API, search jobs and predict endpoint (serve extra)",
        description=(
            "Serve every study of the store in a browser (live), start and stop searches of the "
            "space files in --spaces, open reports, retrain and export winners, and predict "
            "with the exports in --models over HTTP. API docs at /docs. Needs pip install -e "
            "'.[serve]'."
        ),
    )
    command.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    command.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    add_storage_argument(command)
    command.add_argument(
        "--spaces",
        type=Path,
        default=Path("spaces"),
        metavar="DIR",
        help="the space files searches may run (default spaces/)",
    )
    command.add_argument(
        "--models",
        type=Path,
        default=Path("models"),
        metavar="DIR",
        help="export folders served by POST /models/NAME/predict (default models/)",
    )
    command.add_argument(
        "--token-file",
        type=Path,
        metavar="F",
        help="a file holding the token that mutating and predict calls need (Authorization: "
        "Bearer); required to bind anywhere but loopback",
    )
    command.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace, console: Console) -> int:
    from automl.errors import UsageError
    from automl.serve.config import ServeConfig, read_token
    from automl.storage.store import StudyStore

    try:
        import uvicorn

        from automl.serve import create_app
    except ImportError:
        raise UsageError(
            "automl serve needs FastAPI and uvicorn: pip install -e '.[serve]'."
        ) from None
    url = storage_url(args)
    store = StudyStore(url, create=True, create_folder=args.storage is None)
    config = ServeConfig(
        storage=store.url,
        spaces=args.spaces,
        models=args.models,
        jobs=Path("runs") / "serve-jobs",
        host=args.host,
        port=args.port,
        token=read_token(args.token_file) if args.token_file else None,
    ).check()
    console.print(
        f"automl serve: http://{args.host}:{args.port}/ (store {store.shown_url}; spaces "
        f"{args.spaces}; models {args.models}; token "
        f"{'required for changes and predict' if config.token else 'none: loopback only'})",
        markup=False,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")
    return EXIT_OK
