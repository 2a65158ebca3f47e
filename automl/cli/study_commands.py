"""Commands about studies: `search`, `studies`, `show`."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    add_data_arguments,
    add_json_argument,
    add_precision_arguments,
    add_storage_argument,
    cells,
    count_arg,
    data_options,
    duration_arg,
    fmt,
    gpu_list,
    print_json,
    seed_arg,
    storage_flag_note,
    storage_flag_suffix,
    storage_url,
)
from automl.cli.retrain_command import retrain_in_subprocess
from automl.search.names import PRUNERS, SAMPLERS

if TYPE_CHECKING:
    from rich.console import Console

    from automl.storage.records import StudyRecord, TrialRecord


# -- search ---------------------------------------------------------------------------------------


def add_search(commands: Any) -> None:
    command = commands.add_parser(
        "search",
        help="search a space: parallel trials with pruning, stored and resumable",
        description=(
            "Search a space file. Trials run in parallel (one per GPU, or --workers CPU "
            "slots), bad ones are pruned early, and every result is stored: running the same "
            "command again resumes the study to its --trials total. Run the same command on "
            "several hosts with one --storage postgresql://… to search one study together."
        ),
    )
    _add_search_arguments(command, worker=False)
    command.set_defaults(run=run_search_command)


def add_worker(commands: Any) -> None:
    command = commands.add_parser(
        "worker",
        help="contribute this host's GPUs/cores to a study searched on PostgreSQL",
        description=(
            "Run trials of an existing study that several hosts share (--storage "
            "postgresql://…): the same engine as automl search, but it never creates the study, "
            "never retrains and never writes the report. Give the same SPACE, --study and "
            "--trials as the search."
        ),
    )
    _add_search_arguments(command, worker=True)
    command.set_defaults(run=run_search_command)


def _add_search_arguments(command: argparse.ArgumentParser, *, worker: bool) -> None:
    command.add_argument(
        "space",
        metavar="SPACE",
        nargs="?",
        help="the space file, e.g. spaces/cnn.py (default: the built-in flagship space, the "
        "same as spaces/cnn.py; the study is then named after --data)",
    )
    command.add_argument(
        "--trials",
        type=count_arg("--trials"),
        default=20,
        metavar="N",
        help="the study's total of finished (complete + pruned) trials, counted over every "
        "host (default 20)",
    )
    command.add_argument(
        "--study",
        "--study-name",
        metavar="NAME",
        help="study name (default: the space file's name, e.g. cnn)",
    )
    add_storage_argument(command)
    add_data_arguments(command)
    group = command.add_argument_group("trials")
    group.add_argument(
        "--epochs",
        type=count_arg("--epochs"),
        metavar="E",
        help="maximum epochs per trial (default: the space's EPOCHS, else 10)",
    )
    group.add_argument(
        "--objective",
        metavar="METRIC[:DIR]",
        help="override the space's OBJECTIVE, e.g. val_loss or val_auc:max",
    )
    group.add_argument(
        "--seed",
        type=seed_arg(),
        default=0,
        help="seed of the sampler and trials (with --sampler random, trial n gets the same "
        "configuration whatever the number of workers)",
    )
    group.add_argument(
        "--sampler",
        default="tpe",
        choices=SAMPLERS,
        help="Optuna sampler (default tpe: multivariate, constant liar), or a Keras Tuner "
        "oracle: kt-bayesian (Gaussian process, no PyTorch needed), kt-random, kt-hyperband "
        "(decides each trial's epochs; promotions continue their parent's model; --pruner is "
        "then none)",
    )
    group.add_argument(
        "--pruner",
        default="sha",
        choices=PRUNERS,
        help="Optuna pruner (default sha: successive halving, eta=3, from --min-epochs on; "
        "hyperband hedges with brackets that prune later, at the cost of more epochs)",
    )
    group.add_argument(
        "--min-epochs",
        type=count_arg("--min-epochs"),
        default=None,
        metavar="E",
        help="epochs every trial trains before sha or hyperband may prune it (their first "
        "rung, default 1; a resumed study keeps its own). A later rung keeps slow starters "
        "(low learning rates) at the cost of epochs: see benchmarks/README.md, 'The first rung'",
    )
    group.add_argument(
        "--repeats",
        type=count_arg("--repeats"),
        default=1,
        metavar="R",
        help="train each configuration R times with different seeds, epoch by epoch together; "
        "the objective, pruning and early stopping follow their mean (Keras Tuner's "
        "executions_per_trial; default 1)",
    )
    group.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="write each trial's scalars and parameters for TensorBoard (DIR/trial-N; see "
        "them with tensorboard --logdir DIR, HParams tab)",
    )
    group.add_argument(
        "--patience",
        type=count_arg("--patience", minimum=0),
        default=0,
        metavar="P",
        help="early-stopping patience in epochs (default 0: none; the pruner stops poor "
        "trials, and a patience stops the slow climbers that would have won)",
    )
    devices = command.add_argument_group("devices")
    devices.add_argument(
        "--workers",
        type=count_arg("--workers"),
        metavar="N",
        help="CPU workers when there is no GPU (default: one per core, up to 8)",
    )
    devices.add_argument(
        "--gpus",
        type=gpu_list,
        metavar="0,1,…",
        help="GPUs to use (default: every visible GPU; '' for CPU only)",
    )
    devices.add_argument(
        "--trials-per-gpu",
        type=count_arg("--trials-per-gpu"),
        default=1,
        metavar="K",
        help="trials packed on each GPU (default 1)",
    )
    add_precision_arguments(command)
    limits = command.add_argument_group("limits")
    limits.add_argument(
        "--timeout",
        type=duration_arg,
        metavar="T",
        help="start no trial after T (e.g. 90m, 2h, 45s)",
    )
    limits.add_argument(
        "--trial-timeout",
        type=duration_arg,
        metavar="T",
        help="fail a trial that runs longer than T as timed out and replace its worker (default:"
        " 10x the slowest epoch so far x the epochs, at least 5 minutes)",
    )
    limits.add_argument(
        "--max-failures",
        type=count_arg("--max-failures"),
        default=5,
        metavar="N",
        help="stop after N consecutive failed trials (default 5)",
    )
    limits.add_argument(
        "--keep-checkpoints",
        type=count_arg("--keep-checkpoints", minimum=0),
        default=3,
        metavar="K",
        help="keep best-epoch checkpoints of the K best trials (default 3)",
    )
    limits.add_argument(
        "--allow-space-change",
        action="store_true",
        help="resume even though the space file or the data changed",
    )
    hosts = command.add_argument_group("several hosts")
    hosts.add_argument(
        "--heartbeat",
        type=count_arg("--heartbeat"),
        default=10,
        metavar="S",
        help="seconds between heartbeats of running trials; any host fails and re-queues a "
        "trial with none for 3 x S (default 10)",
    )
    command.add_argument("--quiet", action="store_true", help="print only the final result")
    add_json_argument(
        command,
        "a final summary (study, trials by state, best trial, value, parameters, report)",
    )
    if not worker:
        command.add_argument(
            "--no-retrain",
            action="store_true",
            help="skip retraining the winner on train + val (the report still runs)",
        )
    # Plain-Python spaces without TensorFlow, for scheduler benchmarks and fault tests.
    command.add_argument(
        "--executor", default="keras", choices=("keras", "function"), help=argparse.SUPPRESS
    )
    command.set_defaults(worker=worker)


def run_search_command(args: argparse.Namespace, console: Console) -> int:
    from automl.cli.progress import make_progress
    from automl.search import SearchConfig, run_search

    space, study = args.space, args.study
    if space is None:
        from automl.spaces.builtin import FLAGSHIP

        space = str(FLAGSHIP)
        study = study or _study_of_data(args.data)
    config = SearchConfig(
        space=space,
        trials=args.trials,
        study=study,
        storage=args.storage,
        data=args.data,
        data_options=data_options(args),
        epochs=args.epochs,
        workers=args.workers,
        gpus=args.gpus,
        trials_per_gpu=args.trials_per_gpu,
        sampler=args.sampler,
        pruner=args.pruner,
        min_epochs=args.min_epochs,
        timeout=args.timeout,
        seed=args.seed,
        objective=args.objective,
        max_failures=args.max_failures,
        trial_timeout=args.trial_timeout,
        precision=args.precision,
        jit=args.jit,
        deterministic=args.deterministic,
        allow_space_change=args.allow_space_change,
        keep_checkpoints=args.keep_checkpoints,
        patience=args.patience or None,
        executor=args.executor,
        heartbeat=args.heartbeat,
        role="worker" if args.worker else "search",
        tensorboard=args.tensorboard,
        repeats=args.repeats,
    )
    progress = make_progress(console, quiet=args.quiet)
    try:
        summary = run_search(config, progress)
    except KeyboardInterrupt:
        progress.close()
        console.print(
            "Interrupted: running trials were recorded and re-queued; run the same "
            "command again to resume.",
            markup=False,
        )
        raise
    finally:
        progress.close()
    storage_flag = storage_flag_suffix(args)
    render_summary(
        console, summary, storage_flag=storage_flag, storage_note=storage_flag_note(args)
    )
    code, report = _finish_search(args, console, summary, storage_flag)
    if args.json:
        print_json(search_json(summary, report))
    return code


def _finish_search(
    args: argparse.Namespace, console: Console, summary: Any, storage_flag: str
) -> tuple[int, Path | None]:
    """Retrain the winner and write the report, as this run's part is; the exit code, and the
    report's path when one was written."""
    if summary.record.best() is None:
        return (EXIT_ERROR if summary.stopped else EXIT_OK), None
    if args.worker:
        return EXIT_OK, None
    if summary.finisher is not None:
        console.print(
            f"Retraining and the report are done once per study, by {summary.finisher}: "
            f"automl show {shlex.quote(summary.study)}{storage_flag} reads the result.",
            markup=False,
        )
        return EXIT_OK, None
    if args.executor == "keras" and not args.no_retrain:
        retrain_in_subprocess(
            console,
            summary.study,
            summary.storage_url,
            storage_flag=storage_flag,
            output_to_stderr=args.json,
        )
    from automl.reports import write_report

    path = write_report(summary.study, storage=summary.storage_url)
    console.print(f"Report: {path}", markup=False)
    return EXIT_OK, path


def search_json(summary: Any, report: Path | None) -> dict[str, Any]:
    """`automl search --json`: how the search ended, the best trial, the report."""
    from automl.storage.records import counts_json

    record: StudyRecord = summary.record
    best = record.best()
    return {
        "study": summary.study,
        "metric": record.metric,
        "direction": record.direction,
        "target": summary.target,
        "finished": record.finished,
        "counts": counts_json(record.counts()),
        "stopped": summary.stopped or None,
        "seconds": round(summary.seconds, 3),
        "best": None
        if best is None
        else {
            "number": best.number,
            "value": best.value,
            "params": dict(best.params),
            "best_epoch": best.best_epoch,
            "epochs_run": best.epochs_run,
            "params_count": best.params_count,
        },
        "report": str(report) if report is not None else None,
    }


def _study_of_data(data: str | None) -> str:
    """The study of a search without a space file: named after its data (`photos/` → photos)."""
    if not data:
        return "cnn"  # the flagship's own DATA (digits), as `automl search spaces/cnn.py`
    from automl.storage.urls import study_name_from

    return study_name_from(Path(data.rstrip("/\\")).stem, "data")


def render_summary(
    console: Console, summary: Any, *, storage_flag: str, storage_note: str | None = None
) -> None:
    """The end of a search: counts, the best trial, and the commands to run next.

    Args:
        console: where to print.
        summary: the search's `SearchSummary`.
        storage_flag: what the suggested commands add to name the store (never a password).
        storage_note: a line that explains `storage_flag`, or None. Defaults to `None`.
    """
    record: StudyRecord = summary.record
    counts = record.counts()
    shown = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    console.print(
        f"Study '{summary.study}': {record.finished} of {summary.target} finished ({shown}) "
        f"in {summary.seconds:.0f} s this run.",
        markup=False,
    )
    if summary.stopped:
        console.print(f"Stopped early: {summary.stopped}", markup=False)
    if summary.utilisation:
        busy = ", ".join(f"{slot} {fraction:.0%}" for slot, fraction in summary.utilisation.items())
        console.print(f"Worker utilisation: {busy}", markup=False)
    best = record.best()
    if best is None:
        console.print("No complete trial yet.", markup=False)
        return
    console.print(
        f"Best trial {best.number}: {record.metric} {best.value:.4f} at epoch "
        f"{best.best_epoch} of {best.epochs_run}, {best.params_count or 0:,} parameters",
        markup=False,
    )
    console.print("  " + _params_text(best), markup=False)
    study = shlex.quote(summary.study)
    console.print("Next:", markup=False)
    for command in (
        f"automl show {study}",
        f"automl report {study} --open",
        f"automl export {study} -o exported/",
    ):
        console.print(f"  {command}{storage_flag}", markup=False)
    if storage_note:
        console.print(f"  {storage_note}", markup=False)


# -- studies and show -----------------------------------------------------------------------------


def add_studies(commands: Any) -> None:
    command = commands.add_parser("studies", help="list the studies in the store")
    add_storage_argument(command)
    add_json_argument(command, "a list of studies (name, trials by state, best value)")
    command.set_defaults(run=run_studies)


def run_studies(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from automl.storage.records import TrialState
    from automl.storage.store import StudyStore

    store = StudyStore(storage_url(args))
    summaries = store.summaries()
    if args.json:
        print_json([item.to_json() for item in summaries])
        return EXIT_OK
    if not summaries:
        console.print(f"No studies in {store.shown_url}.", markup=False)
        return EXIT_OK
    table = Table(title=f"Studies in {store.shown_url}", title_justify="left")
    for column in ("study", "complete", "pruned", "failed", "running", "best", "last update"):
        table.add_column(column, justify="left" if column in ("study", "last update") else "right")
    for item in summaries:
        table.add_row(
            *cells(
                item.name,
                item.counts[TrialState.COMPLETE],
                item.counts[TrialState.PRUNED],
                item.counts[TrialState.FAILED],
                item.counts[TrialState.RUNNING],
                "-" if item.best_value is None else f"{item.best_value:.4f}",
                item.last_update.strftime("%Y-%m-%d %H:%M:%S") if item.last_update else "-",
            )
        )
    console.print(table)
    return EXIT_OK


def add_show(commands: Any) -> None:
    command = commands.add_parser("show", help="terminal leaderboard of a study")
    command.add_argument("study", metavar="STUDY", help="the study name (see automl studies)")
    add_storage_argument(command)
    command.add_argument(
        "--top", type=count_arg("--top"), metavar="N", help="show the N best trials only"
    )
    command.add_argument(
        "--state",
        choices=("complete", "pruned", "failed", "running", "waiting"),
        help="show trials in one state",
    )
    add_json_argument(command, "the study and its ranked trials")
    command.set_defaults(run=run_show)


def run_show(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from automl.storage.store import StudyStore

    record = StudyStore(storage_url(args)).record(args.study)
    ranked = leaderboard(record)
    if args.state:
        ranked = [(rank, t) for rank, t in ranked if t.state.value == args.state]
    if args.top:
        ranked = ranked[: args.top]
    if args.json:
        from automl.storage.records import counts_json

        print_json(
            {
                "study": record.name,
                "metric": record.metric,
                "direction": record.direction,
                "counts": counts_json(record.counts()),
                "finished": record.finished,
                "trials": [{"rank": rank, **trial.to_json()} for rank, trial in ranked],
            }
        )
        return EXIT_OK
    counts = ", ".join(f"{n} {s.value}" for s, n in record.counts().items() if n) or "no trials"
    table = Table(
        title=f"Study '{record.name}': {record.metric} ({record.direction}); {counts}",
        title_justify="left",
    )
    for column in (
        "rank",
        "trial",
        "state",
        record.metric,
        "best epoch",
        "epochs",
        "params",
        "duration",
        "parameters",
    ):
        table.add_column(
            column,
            justify="right" if column not in ("state", "parameters") else "left",
            overflow="fold",
        )
    for rank, trial in ranked:
        table.add_row(
            *cells(
                rank,
                trial.number,
                trial.state.value,
                "-" if trial.value is None else f"{trial.value:.4f}",
                trial.best_epoch or "-",
                f"{trial.epochs_run} (from {trial.resumed_epoch})"
                if trial.resumed_epoch is not None
                else trial.epochs_run,
                f"{trial.params_count:,}" if trial.params_count else "-",
                f"{trial.duration:.1f} s" if trial.duration is not None else "-",
                _params_text(trial) + (f"  [{trial.failure}]" if trial.failure else ""),
            )
        )
    console.print(table)
    return EXIT_OK


def leaderboard(record: StudyRecord) -> list[tuple[int, TrialRecord]]:
    """(rank, trial) in ranking order; the same ranking the HTML report shows."""
    return [(rank, trial) for rank, trial in enumerate(record.ranked(), start=1)]


def _params_text(trial: TrialRecord) -> str:
    return ", ".join(f"{name}={fmt(value)}" for name, value in trial.params.items())
