"""The `automl` command line: parses, calls one library function, renders. The only printer.

Each command has one `_add_<name>` function that declares its arguments and one `_run_<name>`
function that runs it; `main` only registers and dispatches. Heavy modules (TensorFlow, Keras,
Optuna, rich) are imported inside the run functions, so `automl --help` stays fast.

Exit codes: 0 success, 1 runtime error, 2 usage or input error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from automl import __version__
from automl.errors import AutoMLError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

Runner = Callable[[argparse.Namespace, "Console"], int]


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
    for add in (_add_check, _add_trial, _add_env):
        add(commands)
    return parser


# -- env ------------------------------------------------------------------------------------------


def _add_env(commands: Any) -> None:
    command = commands.add_parser(
        "env", help="print versions, devices and the default storage (for bug reports)"
    )
    command.set_defaults(run=_run_env)


def _run_env(args: argparse.Namespace, console: Console) -> int:
    import platform
    from importlib import metadata

    from rich.table import Table

    from automl.search.devices import discover_gpus, usable_cpus
    from automl.storage.urls import default_storage_url, redact_url

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("automl", __version__)
    table.add_row("Python", f"{platform.python_version()} ({sys.executable})")
    table.add_row("Platform", platform.platform())
    for label, dist in (
        ("TensorFlow", "tensorflow"),
        ("Keras", "keras"),
        ("Optuna", "optuna"),
        ("Keras Tuner", "keras-tuner"),
        ("NumPy", "numpy"),
        ("SQLAlchemy", "sqlalchemy"),
        ("scikit-learn", "scikit-learn"),
    ):
        table.add_row(label, version(dist))
    gpus = discover_gpus()
    shown = ", ".join(f"{g.index}: {g.name} ({g.memory_mib} MiB)" for g in gpus)
    table.add_row("GPUs", shown or "none visible (CPU slots are used)")
    table.add_row("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"))
    table.add_row("CPUs", f"{usable_cpus()} usable of {os.cpu_count()}")
    table.add_row("Default storage", redact_url(default_storage_url()))
    console.print(table)
    return EXIT_OK


# -- check ----------------------------------------------------------------------------------------


def _add_check(commands: Any) -> None:
    command = commands.add_parser(
        "check",
        help="list a space's parameters and build its default model (no training)",
        description=(
            "Load a space file, list every parameter it defines (name, type, range, scale, "
            "default, condition), build the default model and summarise it. No training."
        ),
    )
    command.add_argument("space", metavar="SPACE", help="the space file, e.g. spaces/cnn.py")
    _add_data_argument(command)
    command.add_argument(
        "--samples",
        type=_count_arg("--samples", minimum=0),
        default=0,
        metavar="N",
        help="also build N random configurations and report the branches reached",
    )
    command.add_argument("--seed", type=int, default=0, help="seed of --samples (default 0)")
    command.set_defaults(run=_run_check)


def _run_check(args: argparse.Namespace, console: Console) -> int:
    from automl.spaces import SpaceInfo, read_space_settings

    settings = read_space_settings(args.space)
    data = _load_data(args, settings, console)
    info = SpaceInfo(
        data.input_shape, data.num_classes, data.class_names, len(data.train), settings.epochs or 1
    )
    with console.status("Importing TensorFlow and building models…"):
        from automl.tfruntime import import_tensorflow

        import_tensorflow()
        from automl.spaces import load_space
        from automl.spaces.check import check_space

        space = load_space(args.space)
        report = check_space(space, info, samples=args.samples, seed=args.seed)
    _render_check(console, settings, data, report)
    return EXIT_OK


def _render_check(console: Console, settings: Any, data: Any, report: Any) -> None:
    from rich.table import Table

    from automl.errors import shown_path

    shape = "×".join(str(d) for d in data.input_shape)
    sizes = "/".join(str(v) for v in data.sizes().values())
    console.print(
        f"[bold]Space[/] {shown_path(settings.path)}   [bold]objective[/] {settings.objective}"
        f"   [bold]epochs[/] {settings.epochs or 'not set'}"
    )
    console.print(
        f"[bold]Data[/] {data.source}: {shape}, {data.num_classes} classes, train/val/test {sizes}"
    )
    table = Table(title=f"{len(report.specs)} parameters", title_justify="left")
    for column in ("name", "type", "range / choices", "scale", "default", "condition"):
        table.add_column(column)
    for spec in report.specs:
        condition = " and ".join(c.describe() for c in spec.conditions) or "-"
        table.add_row(
            *_cells(
                spec.name,
                spec.kind.value,
                spec.describe(),
                spec.scale,
                _fmt(spec.default),
                condition,
            )
        )
    console.print(table)
    model = report.model
    console.print(
        f"[bold]Default model[/] {model.name}: {model.params:,} parameters "
        f"({model.trainable_params:,} trainable), input {model.input_shape} → output "
        f"{model.output_shape}, optimizer {model.optimizer}, loss {model.loss}"
    )
    layers = Table(show_edge=False, box=None)
    for column in ("layer", "type", "output", "params"):
        layers.add_column(column, justify="right" if column == "params" else "left")
    lines = list(model.layers)
    shown = lines if len(lines) <= 24 else [*lines[:16], None, *lines[-6:]]
    for line in shown:
        if line is None:
            layers.add_row("…", f"{len(lines) - 22} more layers", "", "")
        else:
            layers.add_row(*_cells(line.name, line.kind, line.output_shape, f"{line.params:,}"))
    console.print(layers)
    if report.samples is not None:
        _render_samples(console, report.samples)
    console.print(
        f"Checked in {report.seconds:.1f} s ({report.exploration_builds} builds to explore "
        "the branches)."
    )


def _render_samples(console: Console, samples: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{samples.samples} random configurations", title_justify="left")
    table.add_column("parameter")
    table.add_column("values reached (count)")
    table.add_column("inactive")
    names = list(samples.branches) + [n for n in samples.inactive if n not in samples.branches]
    for name in names:
        reached = ", ".join(f"{v} ({c})" for v, c in samples.branches.get(name, {}).items())
        table.add_row(*_cells(name, reached or "-", samples.inactive.get(name, 0)))
    console.print(table)
    if samples.min_params is not None:
        console.print(f"Parameter counts: min {samples.min_params:,}, max {samples.max_params:,}.")
    for failure in samples.failures:
        console.print("[red]failed:[/]", _cells(failure)[0])


# -- trial ----------------------------------------------------------------------------------------


def _add_trial(commands: Any) -> None:
    command = commands.add_parser(
        "trial",
        help="train one configuration and print every epoch (debug a space)",
        description=(
            "Train one configuration of a space: the parameters given with --params, defaults "
            "for the rest. Prints one line per epoch and the result."
        ),
    )
    command.add_argument("space", metavar="SPACE", help="the space file, e.g. spaces/cnn.py")
    command.add_argument(
        "--params",
        metavar="JSON",
        help="parameter values as JSON ('{\"depth\": 3}') or a .json file; defaults for the rest",
    )
    command.add_argument(
        "--epochs",
        type=_count_arg("--epochs"),
        metavar="E",
        help="epoch budget (default: the space's EPOCHS, else 10)",
    )
    command.add_argument("--seed", type=int, default=0, help="seed of the trial (default 0)")
    command.add_argument(
        "--objective", metavar="METRIC[:DIR]", help="override the space's OBJECTIVE"
    )
    _add_data_argument(command)
    command.set_defaults(run=_run_trial)


def _run_trial(args: argparse.Namespace, console: Console) -> int:
    import time

    from rich.table import Table

    from automl.spaces import FixedAnswers, Objective, read_space_settings

    settings = read_space_settings(args.space)
    values = _parse_params(args.params)
    objective = Objective.parse(args.objective) if args.objective else settings.objective
    epochs = args.epochs or settings.epochs or 10
    data = _load_data(args, settings, console)
    with console.status("Importing TensorFlow…"):
        from automl.tfruntime import import_tensorflow

        import_tensorflow()
        from automl.search.runner import Outcome, run_trial
        from automl.spaces import load_space

        space = load_space(args.space)
    answers = FixedAnswers(values, missing="default", source="--params")
    console.print(
        f"Training {settings.path.name} on {data.source} for up to {epochs} epochs "
        f"(objective {objective})"
    )
    started = time.perf_counter()
    last = [started]

    def on_epoch(epoch: int, metrics: Any) -> bool:
        now = time.perf_counter()
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        console.print(f"epoch {epoch:>3}  {now - last[0]:6.2f} s  {shown}", markup=False)
        last[0] = now
        return True

    result = run_trial(
        space, data, answers, epochs=epochs, seed=args.seed, objective=objective, on_epoch=on_epoch
    )
    for name in answers.unused():
        console.print(
            f"note: --params {name!r} was not used (unknown name or inactive branch)", markup=False
        )
    table = Table(title="Parameters", title_justify="left", show_header=False)
    for name, value in result.params.items():
        table.add_row(*_cells(name, _fmt(value)))
    console.print(table)
    if result.outcome is Outcome.FAILED:
        console.print(f"Trial failed: {result.failure}", markup=False)
        return EXIT_ERROR
    console.print(
        f"Best {objective.metric} {result.best_value:.4f} at epoch {result.best_epoch} of "
        f"{result.epochs_run}; {result.params_count:,} parameters; "
        f"{time.perf_counter() - started:.1f} s "
        f"(median epoch {result.timings.get('epoch_median', 0.0):.2f} s)"
    )
    return EXIT_OK


def _parse_params(text: str | None) -> dict[str, Any]:
    import json
    from pathlib import Path

    if not text:
        return {}
    source = "--params"
    if not text.lstrip().startswith("{") and Path(text).is_file():
        source, text = text, Path(text).read_text(encoding="utf-8")
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source}: not valid JSON ({exc.msg} at character {exc.pos}); write e.g. "
            '\'{"depth": 3, "optimizer": "sgd"}\'.'
        ) from exc
    if not isinstance(values, dict):
        raise UsageError(f"{source}: must be a JSON object of parameter names to values.")
    return values


# -- shared arguments and helpers -----------------------------------------------------------------


def _add_data_argument(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group("data")
    group.add_argument(
        "--data",
        metavar="SRC",
        help=(
            "data source: digits, mnist, fashion_mnist, cifar10, cifar100, a .npz file or an "
            "image folder (default: the space's DATA, else digits)"
        ),
    )
    group.add_argument(
        "--val-split",
        type=_fraction_arg("--val-split"),
        default=0.2,
        metavar="F",
        help="validation fraction when the data has no val split (default 0.2)",
    )
    group.add_argument(
        "--test-split",
        type=_fraction_arg("--test-split"),
        default=0.2,
        metavar="F",
        help="test fraction when the data has no test split (default 0.2)",
    )
    group.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip corrupt, empty, non-image and oversized files instead of stopping",
    )


def _load_data(args: argparse.Namespace, settings: Any, console: Console) -> Any:
    from automl.data import DataOptions, load_dataset

    options = DataOptions(
        val_split=args.val_split,
        test_split=args.test_split,
        skip_bad_images=args.skip_bad_images,
    )
    dataset = load_dataset(args.data or settings.data or "digits", options)
    for note in dataset.notes:
        console.print(f"data: {note}", markup=False)
    return dataset


def _fraction_arg(flag: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} needs a number, got {text!r}") from None
        if not 0.0 < value < 0.9:
            raise argparse.ArgumentTypeError(f"{flag} must be between 0 and 0.9, got {value}")
        return value

    return parse


def _count_arg(flag: str, minimum: int = 1) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} needs a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{flag} must be at least {minimum}, got {value}")
        return value

    return parse


def _cells(*values: object) -> list[Any]:
    """Table cells that show user text as is (rich would read `[conv]` as markup)."""
    from rich.text import Text

    return [Text(v if isinstance(v, str) else str(v)) for v in values]


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _make_console(stderr: bool = False) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Logs and pipes have no width; 80 columns would fold every table.
        console.width = 140
    return console


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
    try:
        return int(args.run(args, _make_console()))
    except AutoMLError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        from automl.errors import one_line

        print(
            f"error: unexpected {type(exc).__name__}: {one_line(exc)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    finally:
        logger.setLevel(saved_level)


__all__ = ["UsageError", "build_parser", "main"]
