"""The `retrain` command: the best trial(s) on train + val, scored on the test split.

Also how other commands retrain: `retrain_in_subprocess` runs this command in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from automl.cli.common import (
    EXIT_OK,
    add_json_argument,
    add_storage_argument,
    cells,
    count_arg,
    print_json,
    storage_url,
)

if TYPE_CHECKING:
    import subprocess

    from rich.console import Console


def add_retrain(commands: Any) -> None:
    command = commands.add_parser(
        "retrain",
        help="retrain the best trial(s) on train + val and score them on the test split",
        description=(
            "Rebuild the top-K trials from their stored parameters, train each on train + val "
            "for the same number of optimizer steps as its best epoch (see the README), and "
            "score it on the held-out test split."
        ),
    )
    command.add_argument("study", metavar="STUDY", help="the study name")
    add_storage_argument(command)
    command.add_argument(
        "--top-k",
        type=count_arg("--top-k"),
        default=1,
        metavar="K",
        help="retrain the K best complete trials (default 1)",
    )
    command.add_argument(
        "--epochs",
        type=count_arg("--epochs"),
        metavar="E",
        help="epochs of retraining (default: the epoch rule)",
    )
    command.add_argument(
        "--seeds",
        type=count_arg("--seeds"),
        default=1,
        metavar="S",
        help="retrain each trial with S seeds (default 1)",
    )
    command.add_argument(
        "--from-checkpoint",
        action="store_true",
        help="score each trial's best-epoch checkpoint instead (no training)",
    )
    command.add_argument(
        "--space",
        metavar="PATH",
        help="the space file, if it moved since the search (same content)",
    )
    add_json_argument(command, "each model's test metrics and file")
    # Set by retrain_in_subprocess: the process this one must not outlive.
    command.add_argument("--exit-with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)
    command.set_defaults(run=run_retrain)


def run_retrain(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    if args.exit_with_parent is not None:
        from automl.lifetime import exit_with_parent

        exit_with_parent(args.exit_with_parent)
    from automl.deploy import retrain_study

    results = retrain_study(
        args.study,
        storage=storage_url(args),
        top_k=args.top_k,
        epochs=args.epochs,
        seeds=args.seeds,
        from_checkpoint=args.from_checkpoint,
        space_path=args.space,
        on_result=lambda r: console.print(
            f"trial {r.trial} ({r.source}, seed {r.seed}): test accuracy "
            f"{r.metrics['accuracy']:.4f} after {r.epochs} epochs, {r.seconds:.1f} s",
            markup=False,
        ),
    )
    _print_choice(console, args, results)
    if args.json:
        print_json(
            [
                {
                    "trial": r.trial,
                    "model": r.source,
                    "seed": r.seed,
                    "epochs": r.epochs,
                    "seconds": round(r.seconds, 3),
                    "metrics": r.metrics,
                    "file": str(r.model_path),
                }
                for r in results
            ]
        )
        return EXIT_OK
    table = Table(title=f"Test split of study '{args.study}'", title_justify="left")
    for column in (
        "trial",
        "model",
        "seed",
        "epochs",
        "seconds",
        "accuracy",
        "top-5",
        "macro F1",
        "file",
    ):
        table.add_column(column)
    for r in results:
        table.add_row(
            *cells(
                r.trial,
                r.source,
                r.seed,
                r.epochs,
                f"{r.seconds:.1f}",
                f"{r.metrics['accuracy']:.4f}",
                f"{r.metrics['top5_accuracy']:.4f}" if "top5_accuracy" in r.metrics else "-",
                f"{r.metrics['macro_f1']:.4f}",
                r.model_path,
            )
        )
    console.print(table)
    return EXIT_OK


def _print_choice(console: Console, args: argparse.Namespace, results: list[Any]) -> None:
    """Of several retrained trials, the one reports and export use (best mean test accuracy)."""
    if len({r.trial for r in results if r.source == "retrain"}) < 2:
        return
    from automl.storage.tables import ResultTables, retrained_trials

    tables = ResultTables(storage_url(args))
    try:
        (chosen, *others) = retrained_trials(tables.retrains(args.study))
    finally:
        tables.close()
    console.print(
        f"Chosen: trial {chosen.trial}, the best mean test accuracy ({chosen.mean_accuracy:.4f} "
        f"over {len(chosen.runs)} seed(s); next: "
        + ", ".join(f"trial {t.trial} {t.mean_accuracy:.4f}" for t in others[:3])
        + "). Reports and export use it.",
        markup=False,
    )


# The automatic retraining of a search's winner: seeds whose spread the report shows as the
# noise floor (a search's differences between trials smaller than it are noise).
NOISE_FLOOR_SEEDS = 3


def retrain_in_subprocess(
    console: Console,
    study: str,
    storage: str,
    *,
    storage_flag: str = "",
    output_to_stderr: bool = False,
    seeds: int = NOISE_FLOOR_SEEDS,
    run: Callable[..., subprocess.CompletedProcess[bytes]] | None = None,
) -> None:
    """Run `automl retrain STUDY` in a fresh process (for `search` and `report --retrain`).

    TensorFlow stays out of the calling process (the scheduler's, or a report's). A failed
    retrain is reported and does not fail the caller: its report shows the search only. The
    child ends when this process does, even by `kill -9`: a stopped search leaves nothing
    behind.

    Args:
        console: where to print.
        study: the study name.
        storage: the storage URL. The child gets it in its environment (`AUTOML_STORAGE`):
            a command line is visible to every local user (`ps`), a password included.
        storage_flag: what the suggested command adds to name the store (never a password).
            Defaults to `""`.
        output_to_stderr: send the child's output to stderr (the caller's stdout carries
            JSON). Defaults to `False`.
        seeds: models trained (with seeds 0..seeds-1); their spread is the report's noise
            floor. Defaults to `NOISE_FLOOR_SEEDS`.
        run: starts the child and waits for it (injectable for tests). Defaults to
            `subprocess.run`.
    """
    import subprocess

    console.print(
        f"Retraining the winner of '{study}' on train + val with {seeds} seed(s), scoring it "
        "on test…",
        markup=False,
    )
    command = [
        sys.executable,
        "-m",
        "automl",
        "retrain",
        study,
        "--seeds",
        str(seeds),
        "--exit-with-parent",
        str(os.getpid()),
    ]
    env = {**os.environ, "AUTOML_STORAGE": storage}
    completed = (run or subprocess.run)(
        # File descriptor 2: the process's stderr even where sys.stderr is replaced.
        command,
        env=env,
        check=False,
        stdout=2 if output_to_stderr else None,
    )
    if completed.returncode != 0:
        console.print(
            f"Retraining failed (exit code {completed.returncode}); the report shows "
            f"the search only. Run: automl retrain {shlex.quote(study)}{storage_flag}",
            markup=False,
        )
