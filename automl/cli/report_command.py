"""The `report` command: write a study's self-contained HTML report."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from automl.cli.common import EXIT_OK, add_storage_argument, storage_flag_suffix, storage_url
from automl.cli.retrain_command import retrain_in_subprocess

if TYPE_CHECKING:
    from rich.console import Console


def add_report(commands: Any) -> None:
    command = commands.add_parser(
        "report",
        help="write the study's self-contained HTML report",
        description="Write one HTML file (opens offline) that ranks the trials and shows the "
        "search's figures and the retrained winner.",
    )
    command.add_argument("study", metavar="STUDY", help="the study name")
    add_storage_argument(command)
    command.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="where to write it (default runs/<study>/report.html)",
    )
    command.add_argument("--open", action="store_true", help="open it in the browser")
    command.add_argument(
        "--retrain", action="store_true", help="retrain the winner first (as automl retrain STUDY)"
    )
    command.set_defaults(run=run_report)


def run_report(args: argparse.Namespace, console: Console) -> int:
    from automl.reports import write_report

    storage = storage_url(args)
    if args.retrain:
        retrain_in_subprocess(console, args.study, storage, storage_flag=storage_flag_suffix(args))
    path = write_report(args.study, storage=storage, output=args.output)
    console.print(f"Report: {path}", markup=False)
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return EXIT_OK
