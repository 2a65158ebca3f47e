"""The `automl` command line: parses, calls one library function, renders. The only printer.

Each command has one `add_<name>` function that declares its arguments and one `run_<name>`
function that runs it (in the modules of this package); `main` only registers and dispatches.
Heavy modules (TensorFlow, Keras, Optuna, rich) are imported inside the run functions, so
`automl --help` stays fast.

Exit codes: 0 success, 1 runtime error, 2 usage or input error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from automl import __version__
from automl.cli import (
    completion_command,
    deploy_commands,
    report_command,
    retrain_command,
    serve_command,
    space_commands,
    study_commands,
)
from automl.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, make_console
from automl.errors import AutoMLError, Interrupted
from automl.storage.urls import redact_text


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line and exits 2."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="automl",
        description=(
            "Hyperparameter search for Keras image classifiers: search a space file in parallel "
            "with pruning, resume studies, report, retrain and export the winner."
        ),
        epilog="Start with: automl check spaces/cnn.py, then automl search spaces/cnn.py.",
    )
    parser.add_argument("--version", action="version", version=f"automl {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logs on errors"
    )
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for add in (
        space_commands.add_check,
        space_commands.add_trial,
        study_commands.add_search,
        study_commands.add_worker,
        study_commands.add_studies,
        study_commands.add_show,
        report_command.add_report,
        retrain_command.add_retrain,
        deploy_commands.add_export,
        deploy_commands.add_predict,
        serve_command.add_serve,
        space_commands.add_env,
        completion_command.add_completion,
    ):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    debug = args.debug or os.environ.get("AUTOML_DEBUG") == "1"
    logger = logging.getLogger("automl")
    saved_level = logger.level
    if debug:
        logger.setLevel(logging.DEBUG)
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Every message below passes through redact_text with the store's URL: an error from a
    # driver or a library may quote it, password and all.
    urls = (getattr(args, "storage", None) or "", os.environ.get("AUTOML_STORAGE", ""))
    parent = os.environ.pop("AUTOML_STOP_WITH_PARENT", "")
    if parent.isdigit():  # a job of `automl serve`: Ctrl-C itself when the server dies
        from automl.lifetime import interrupt_with_parent

        interrupt_with_parent(int(parent))
    try:
        # With --json, stdout carries the JSON alone: everything else goes to stderr.
        return int(args.run(args, make_console(stderr=bool(getattr(args, "json", False)))))
    except AutoMLError as exc:
        if debug:
            raise
        print(f"error: {redact_text(str(exc), *urls)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):  # 130 for Ctrl-C, 143 for SIGTERM
            print(f"interrupted ({exc.shown})", file=sys.stderr)
            return exc.exit_code
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        from automl.errors import one_line

        print(
            f"error: unexpected {type(exc).__name__}: {redact_text(one_line(exc), *urls)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    finally:
        logger.setLevel(saved_level)


__all__ = ["build_parser", "main"]
