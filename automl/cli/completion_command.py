"""The `completion` command: a bash or zsh completion script for `automl`, made by `shtab` from
the command line's own parser (so it always lists the commands and flags this version has)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from automl.cli.common import EXIT_OK

if TYPE_CHECKING:
    from rich.console import Console

INSTALL = {
    "bash": "automl completion bash > ~/.local/share/bash-completion/completions/automl",
    "zsh": "mkdir -p ~/.zfunc && automl completion zsh > ~/.zfunc/_automl  (and, in ~/.zshrc "
    "before compinit: fpath+=~/.zfunc)",
}
# Arguments completed with file or folder names (by their `dest`).
_FILES = {"space", "images", "data", "token_file"}
_FOLDERS = {"output", "directory", "spaces", "models", "tensorboard"}


def add_completion(commands: Any) -> None:
    command = commands.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="Print a completion script for automl's commands and flags. Install it "
        f"with: {INSTALL['bash']} (bash), or {INSTALL['zsh']}. Open a new shell afterwards.",
    )
    command.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    command.set_defaults(run=run_completion)


def run_completion(args: argparse.Namespace, console: Console) -> int:
    import shtab

    from automl.cli import build_parser

    parser = build_parser()
    _mark_paths(parser, shtab)
    sys.stdout.write(shtab.complete(parser, shell=args.shell))
    sys.stdout.flush()
    return EXIT_OK


def _mark_paths(parser: argparse.ArgumentParser, shtab: Any) -> None:
    """Tell shtab which arguments take file or folder names, in every sub-command."""
    for action in parser._actions:  # argparse keeps no public list of them
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _mark_paths(child, shtab)
        elif action.dest in _FILES:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
        elif action.dest in _FOLDERS:
            action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
