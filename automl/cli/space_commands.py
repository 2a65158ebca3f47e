"""Commands about one space file: `check`, `trial`, and `env`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from automl import __version__
from automl.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    add_data_arguments,
    add_json_argument,
    add_precision_arguments,
    add_storage_argument,
    cells,
    count_arg,
    fmt,
    load_data,
    print_json,
    seed_arg,
    storage_url,
)
from automl.errors import UsageError
from automl.search.seeds import TRIAL_SEED_MAX

if TYPE_CHECKING:
    from rich.console import Console


def add_env(commands: Any) -> None:
    command = commands.add_parser(
        "env", help="print versions, devices and the default storage (for bug reports)"
    )
    add_json_argument(command, "the same facts")
    command.set_defaults(run=run_env)


def run_env(args: argparse.Namespace, console: Console) -> int:
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

    gpus = discover_gpus()
    facts: dict[str, Any] = {
        "automl": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "packages": {
            label: version(dist)
            for label, dist in (
                ("TensorFlow", "tensorflow"),
                ("Keras", "keras"),
                ("Optuna", "optuna"),
                ("Keras Tuner", "keras-tuner"),
                ("NumPy", "numpy"),
                ("SQLAlchemy", "sqlalchemy"),
                ("scikit-learn", "scikit-learn"),
            )
        },
        "gpus": [{"index": g.index, "name": g.name, "memory_mib": g.memory_mib} for g in gpus],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cpus": {"usable": usable_cpus(), "total": os.cpu_count()},
        "default_storage": redact_url(default_storage_url()),
    }
    if args.json:
        print_json(facts)
        return EXIT_OK
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("automl", __version__)
    table.add_row("Python", f"{facts['python']} ({sys.executable})")
    table.add_row("Platform", facts["platform"])
    for label, installed in facts["packages"].items():
        table.add_row(label, installed)
    shown = ", ".join(f"{g.index}: {g.name} ({g.memory_mib} MiB)" for g in gpus)
    table.add_row("GPUs", shown or "none visible (CPU slots are used)")
    table.add_row("CUDA_VISIBLE_DEVICES", facts["cuda_visible_devices"] or "(unset)")
    table.add_row("CPUs", f"{facts['cpus']['usable']} usable of {facts['cpus']['total']}")
    table.add_row("Default storage", facts["default_storage"])
    console.print(table)
    return EXIT_OK


# -- check ----------------------------------------------------------------------------------------


def add_check(commands: Any) -> None:
    command = commands.add_parser(
        "check",
        help="list a space's parameters and build its default model (no training)",
        description=(
            "Load a space file, list every parameter it defines (name, type, range, scale, "
            "default, condition), build the default model and summarise it. No training."
        ),
    )
    command.add_argument("space", metavar="SPACE", help="the space file, e.g. spaces/cnn.py")
    add_data_arguments(command)
    command.add_argument(
        "--samples",
        type=count_arg("--samples", minimum=0),
        default=0,
        metavar="N",
        help="also build N random configurations and report the branches reached",
    )
    command.add_argument("--seed", type=seed_arg(), default=0, help="seed of --samples (default 0)")
    command.set_defaults(run=run_check)


def run_check(args: argparse.Namespace, console: Console) -> int:
    from automl.spaces import SpaceInfo, read_space_settings

    settings = read_space_settings(args.space)
    data = load_data(args, settings, console)
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
            *cells(
                spec.name,
                spec.kind.value,
                spec.describe(),
                spec.scale,
                fmt(spec.default),
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
            layers.add_row(*cells(line.name, line.kind, line.output_shape, f"{line.params:,}"))
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
        table.add_row(*cells(name, reached or "-", samples.inactive.get(name, 0)))
    console.print(table)
    if samples.min_params is not None:
        console.print(f"Parameter counts: min {samples.min_params:,}, max {samples.max_params:,}.")
    for failure in samples.failures:
        console.print("[red]failed:[/]", cells(failure)[0])


# -- trial ----------------------------------------------------------------------------------------


def add_trial(commands: Any) -> None:
    command = commands.add_parser(
        "trial",
        help="train one configuration and print every epoch (debug a space, replay a trial)",
        description=(
            "Train one configuration of a space: the parameters given with --params, defaults "
            "for the rest. Prints one line per epoch and the result. With --replay STUDY:N, "
            "train trial N of a study again with everything read from the store (space file "
            "checked against its stored hash, parameters, seed, data, epochs, settings) and "
            "compare its curve with the stored one: exact for a study searched with "
            "--deterministic (on CPU); exit 1 if such a curve is not reproduced."
        ),
    )
    command.add_argument(
        "space",
        metavar="SPACE",
        nargs="?",
        help="the space file, e.g. spaces/cnn.py (with --replay: only if the file moved since "
        "the search)",
    )
    command.add_argument(
        "--replay",
        metavar="STUDY:N",
        help="train trial N of STUDY again from the store and compare the curves",
    )
    command.add_argument(
        "--params",
        metavar="JSON",
        help="parameter values as JSON ('{\"depth\": 3}') or a .json file; defaults for the rest",
    )
    command.add_argument(
        "--epochs",
        type=count_arg("--epochs"),
        metavar="E",
        help="epoch budget (default: the space's EPOCHS, else 10)",
    )
    command.add_argument(
        "--seed", type=seed_arg(TRIAL_SEED_MAX), help="seed of the trial (default 0)"
    )
    command.add_argument(
        "--objective", metavar="METRIC[:DIR]", help="override the space's OBJECTIVE"
    )
    add_storage_argument(command)
    add_data_arguments(command)
    add_precision_arguments(command)
    command.set_defaults(run=run_trial_command)


# Flags a replay reads from the store instead (its own values would not reproduce the trial).
_FROM_THE_STORE = ("params", "epochs", "seed", "objective", "data", "image_size", "jit")


def run_trial_command(args: argparse.Namespace, console: Console) -> int:
    if args.replay:
        return _run_replay(args, console)
    if args.space is None:
        raise UsageError(
            "automl trial: give a space file (automl trial spaces/cnn.py) or --replay STUDY:N."
        )
    from automl.spaces import FixedAnswers, Objective, read_space_settings

    settings = read_space_settings(args.space)
    values = _parse_params(args.params)
    objective = Objective.parse(args.objective) if args.objective else settings.objective
    epochs = args.epochs or settings.epochs or 10
    data = load_data(args, settings, console)
    with console.status("Importing TensorFlow…"):
        from automl.tfruntime import import_tensorflow, set_precision

        import_tensorflow(deterministic=args.deterministic)
        policy = set_precision(args.precision)
        from automl.search.runner import run_trial
        from automl.spaces import load_space

        space = load_space(args.space)
    answers = FixedAnswers(values, missing="default", source="--params")
    console.print(
        f"Training {settings.path.name} on {data.source} for up to {epochs} epochs "
        f"(objective {objective}; {policy}{', XLA' if args.jit else ''}"
        f"{', deterministic' if args.deterministic else ''})"
    )
    printer = _EpochPrinter(console)
    result = run_trial(
        space,
        data,
        answers,
        epochs=epochs,
        seed=args.seed or 0,
        objective=objective,
        on_epoch=printer,
        jit=args.jit,
    )
    for name in answers.unused():
        console.print(
            f"note: --params {name!r} was not used (unknown name or inactive branch)", markup=False
        )
    return _print_result(console, result, objective, printer.started)


def _run_replay(args: argparse.Namespace, console: Console) -> int:
    from automl.search.replay import compare_curves, parse_target, plan_replay, replay_trial
    from automl.storage.store import StudyStore

    given = [f"--{name.replace('_', '-')}" for name in _FROM_THE_STORE if getattr(args, name)]
    if given:
        raise UsageError(
            f"automl trial --replay reads {', '.join(given)} from the store; leave "
            f"{'it' if len(given) == 1 else 'them'} out (or train a new configuration "
            "without --replay)."
        )
    study, number = parse_target(args.replay)
    plan = plan_replay(StudyStore(storage_url(args)), study, number)
    trial = plan.trial
    console.print(
        f"Replaying trial {number} of {study!r}: seed {plan.seed}, {plan.epochs} of "
        f"{plan.budget} epochs"
        f"{f', {plan.threads} threads' if plan.threads else ''}"
        f"{', deterministic' if plan.deterministic or args.deterministic else ''}",
        markup=False,
    )
    for note in plan.notes:
        console.print(f"note: {note}", markup=False)
    printer = _EpochPrinter(console)  # (its first epoch includes TensorFlow's start-up)
    result = replay_trial(
        plan,
        space_path=args.space,
        deterministic=args.deterministic,
        on_epoch=printer,
    )
    code = _print_result(console, result, plan.objective, printer.started)
    metric = plan.objective.metric
    replayed = {i: e[metric] for i, e in enumerate(result.history, start=1) if metric in e}
    comparison = compare_curves(trial.intermediate, replayed)
    if comparison.exact:
        console.print(
            f"The replay reproduced the stored {metric} curve exactly "
            f"({comparison.epochs} epochs).",
            markup=False,
        )
        return code
    at = comparison.first_difference
    console.print(
        f"The replay's {metric} curve differs from the stored one from epoch {at} "
        f"(stored {_at(trial.intermediate, at)}, replayed {_at(replayed, at)}; largest "
        f"difference {comparison.largest:.4f} over {comparison.epochs} epochs).",
        markup=False,
    )
    return EXIT_ERROR if plan.deterministic or args.deterministic else code


def _at(curve: Any, epoch: int | None) -> str:
    value = curve.get(epoch) if epoch is not None else None
    return f"{value:.4f}" if value is not None else "none"


class _EpochPrinter:
    """Prints one line per epoch (a run_trial `on_epoch` hook that never stops the trial)."""

    def __init__(self, console: Console) -> None:
        import time

        self.console = console
        self.started = self.last = time.perf_counter()

    def __call__(self, epoch: int, metrics: Any) -> bool:
        import time

        now = time.perf_counter()
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.console.print(f"epoch {epoch:>3}  {now - self.last:6.2f} s  {shown}", markup=False)
        self.last = now
        return True


def _print_result(console: Console, result: Any, objective: Any, started: float) -> int:
    import time

    from rich.table import Table

    from automl.search.runner import Outcome

    table = Table(title="Parameters", title_justify="left", show_header=False)
    for name, value in result.params.items():
        table.add_row(*cells(name, fmt(value)))
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
