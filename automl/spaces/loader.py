"""Loading a search-space file and holding it to its contract.

A space file defines `build(hp)` or `build(hp, info)` returning a compiled `keras.Model` or a
`TrainingPlan` of one (or a Keras Tuner `HyperModel` as `hypermodel = MyHyperModel()`), and may
define `OBJECTIVE`, `DATA`, `EPOCHS`, `BATCH_SIZE` (used where the space defines no `batch_size`
hyperparameter) and `fit(hp, model, *args, **kwargs)`. `Space.build_plan`
gives every caller a `TrainingPlan`; `Space.build` gives the model alone.

`read_space_settings` reads the constants with `ast`, without running the file, so the scheduler
and the CLI learn them without importing TensorFlow. `load_space` runs the file (in a worker, or
in `automl check`). Every mistake becomes a `SpaceError` whose message starts with `file:line`.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from automl.errors import SpaceError, one_line, shown_path
from automl.spaces.contract import checked_plan
from automl.spaces.hyperparameters import HyperParameters
from automl.spaces.plan import TrainingPlan, plans_made

Direction = Literal["maximize", "minimize"]
_SETTINGS = ("OBJECTIVE", "DATA", "EPOCHS", "BATCH_SIZE")
# A message that starts with `file:line: ` (those of `hp` calls) already names the user's line.
_LOCATED = re.compile(r"[^:\s][^:]*:\d+: ")


@dataclass(frozen=True)
class Objective:
    """The metric a search optimises, as Keras names it in `fit` logs (`val_accuracy`, …)."""

    metric: str = "val_accuracy"
    direction: Direction = "maximize"

    @classmethod
    def parse(cls, value: object, where: str = "--objective") -> Objective:
        """Read `"val_loss"`, `"val_loss:minimize"`, `("val_loss", "min")` or a mapping.

        The direction of a bare metric name is inferred: losses and errors are minimised.
        """
        metric: object
        direction: object = None
        if isinstance(value, str):
            metric, _, direction = value.partition(":")
            direction = direction or None
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            metric, direction = value
        elif isinstance(value, dict) and "metric" in value:
            metric, direction = value["metric"], value.get("direction")
        else:
            raise SpaceError(
                f"{where}: OBJECTIVE must be a metric name or (metric, direction), got "
                f"{value!r}; write e.g. OBJECTIVE = ('val_accuracy', 'maximize')."
            )
        if not isinstance(metric, str) or not metric:
            raise SpaceError(f"{where}: the objective metric must be a non-empty string.")
        if direction is None:
            direction = "minimize" if ("loss" in metric or "error" in metric) else "maximize"
        aliases = {"max": "maximize", "min": "minimize"}
        direction = aliases.get(str(direction), direction)
        if direction not in ("maximize", "minimize"):
            raise SpaceError(
                f"{where}: objective direction must be 'maximize' or 'minimize', got {direction!r}."
            )
        return cls(metric=metric, direction=direction)

    def better(self, a: float, b: float) -> bool:
        """Whether `a` is strictly better than `b`."""
        return a > b if self.direction == "maximize" else a < b

    def __str__(self) -> str:
        return f"{self.metric} ({self.direction})"


@dataclass(frozen=True)
class SpaceInfo:
    """What `build(hp, info)` learns about the data and the trial.

    Attributes:
        input_shape: (height, width, channels) of the images.
        num_classes: number of classes.
        class_names: class names, index = label.
        train_size: number of training examples. Defaults to `0` (unknown).
        epochs: the trial's epoch budget, for learning-rate schedules. Defaults to `1`.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    train_size: int = 0
    epochs: int = 1

    def steps_per_epoch(self, batch_size: int) -> int:
        """Batches per epoch at `batch_size` (at least 1)."""
        return max(1, -(-self.train_size // max(1, batch_size)))


@dataclass(frozen=True)
class SpaceSettings:
    """A space file read without running it.

    Attributes:
        path: the file, absolute.
        source: its text, stored with a study.
        sha256: hash of the text, checked when a study resumes.
        objective: `OBJECTIVE`, or `val_accuracy` maximised.
        data: `DATA`, the default data source, or None.
        epochs: `EPOCHS`, the default epoch budget, or None.
        batch_size: `BATCH_SIZE`, the batch size where `hp` has no `batch_size`, or None (32).
    """

    path: Path
    source: str
    sha256: str
    objective: Objective
    data: str | None
    epochs: int | None
    batch_size: int | None = None


def source_sha256(source: str) -> str:
    """The hash of a space file's text, as the study stores it."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def read_space_settings(path: str | os.PathLike[str]) -> SpaceSettings:
    """Read a space file's constants and hash without executing it (no TensorFlow import).

    Raises:
        SpaceError: the file is missing, not Python, or a constant is not a literal.
    """
    file = Path(path)
    shown = shown_path(file)
    if not file.is_file():
        hint = " (it is a folder)" if file.is_dir() else ""
        raise SpaceError(
            f"{shown}: no such space file{hint}; give the path of a .py file that defines "
            "build(hp), e.g. spaces/cnn.py."
        )
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{shown}: cannot read the space file: {exc}.") from exc
    try:
        tree = ast.parse(source, filename=str(file))
    except SyntaxError as exc:
        raise SpaceError(
            f"{shown}:{exc.lineno}: syntax error: {exc.msg}; fix the Python syntax at that line."
        ) from exc
    found: dict[str, tuple[object, int]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in _SETTINGS:
                found[target.id] = (
                    _literal(node.value, target.id, f"{shown}:{node.lineno}"),
                    node.lineno,
                )
    objective = Objective()
    if "OBJECTIVE" in found:
        value, line = found["OBJECTIVE"]
        objective = Objective.parse(value, f"{shown}:{line}")
    data = None
    if "DATA" in found:
        value, line = found["DATA"]
        if not isinstance(value, str):
            raise SpaceError(f"{shown}:{line}: DATA must be a string such as 'digits'.")
        data = value
    epochs = None
    if "EPOCHS" in found:
        value, line = found["EPOCHS"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpaceError(f"{shown}:{line}: EPOCHS must be a positive integer, got {value!r}.")
        epochs = value
    batch_size = None
    if found.get("BATCH_SIZE", (None, 0))[0] is not None:
        value, line = found["BATCH_SIZE"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpaceError(
                f"{shown}:{line}: BATCH_SIZE must be a positive integer, got {value!r}."
            )
        batch_size = value
    return SpaceSettings(
        path=file.resolve(),
        source=source,
        sha256=source_sha256(source),
        objective=objective,
        data=data,
        epochs=epochs,
        batch_size=batch_size,
    )


class Space:
    """A loaded space file: builds models for given `hp` and holds them to the contract.

    Use `load_space` to make one.
    """

    def __init__(
        self,
        settings: SpaceSettings,
        module: ModuleType,
        build_fn: Callable[..., Any],
        fit_fn: Callable[..., Any] | None,
    ) -> None:
        self.settings = settings
        self.module = module
        self._build_fn = build_fn
        self._fit_fn = fit_fn
        self._takes_info = positional_count(build_fn) >= 2
        self._build_line = _line_of(build_fn, settings.path)

    @property
    def path(self) -> Path:
        return self.settings.path

    @property
    def objective(self) -> Objective:
        return self.settings.objective

    @property
    def fit_fn(self) -> Callable[..., Any] | None:
        """The space's own `fit(hp, model, *args, **kwargs)`, if it defines one."""
        return self._fit_fn

    def build_plan(self, hp: HyperParameters, info: SpaceInfo) -> TrainingPlan:
        """Run the space's `build` and check what it returns; a bare model becomes a plan.

        Raises:
            SpaceError: `build` raised, returned something other than a compiled `keras.Model`
                or a `TrainingPlan` of one, or used a `Lambda` layer. The message starts with
                `file:line`.
        """
        try:
            with plans_made() as made:
                built = self._build_fn(hp, info) if self._takes_info else self._build_fn(hp)
        except SpaceError as exc:
            if _LOCATED.match(str(exc)):
                raise
            # The zoo's errors do not know the space file: name the line of build() that
            # called it, as for any other exception.
            line = _raising_line(exc, self.path) or self._build_line
            raise SpaceError(f"{self._where(line)}: {exc}") from exc
        except Exception as exc:
            line = _raising_line(exc, self.path) or self._build_line
            raise SpaceError(
                f"{self._where(line)}: build() raised {type(exc).__name__}: {one_line(exc, 600)}"
            ) from exc
        if not isinstance(built, TrainingPlan) and any(p.model is built for p in made):
            raise SpaceError(
                f"{self._where(self._build_line)}: build() made a TrainingPlan for its model "
                "(zoo.fine_tune, zoo.add_callbacks or zoo.reduce_on_plateau) but returned the "
                "bare model, so the plan would be lost; return what they return, e.g. "
                "return zoo.fine_tune(model, base, layers=20)."
            )
        plan = checked_plan(built, self._where(self._build_line))
        if not plan.model.built:
            # A Sequential model with no Input (as Keras Tuner examples write them) gets the
            # data's shape here, so its parameters can be counted before training.
            plan.model.build((None, *info.input_shape))
        return plan

    def build(self, hp: HyperParameters, info: SpaceInfo) -> Any:
        """The compiled model of `build_plan`, without the plan (what Keras Tuner,
        `automl check` and the worker's preflight need).

        Raises:
            SpaceError: as `build_plan`.
        """
        return self.build_plan(hp, info).model

    def _where(self, line: int) -> str:
        return f"{shown_path(self.path)}:{line}"


def load_space(path: str | os.PathLike[str]) -> Space:
    """Run a space file and find its `build` (imports Keras through the file).

    Raises:
        SpaceError: with `file:line` for a syntax error, an error while importing the file,
            or a missing `build`.
    """
    settings = read_space_settings(path)
    file = settings.path
    shown = shown_path(file)
    module_name = "automl_space_" + "".join(c if c.isalnum() else "_" for c in file.stem)
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise SpaceError(f"{shown}: cannot be loaded as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    folder = str(file.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SpaceError:
        raise
    except ImportError as exc:
        line = _raising_line(exc, file) or 1
        raise SpaceError(
            f"{shown}:{line}: {type(exc).__name__}: {one_line(exc)}; install the missing "
            "package or fix the import."
        ) from exc
    except Exception as exc:
        line = _raising_line(exc, file) or 1
        raise SpaceError(
            f"{shown}:{line}: {type(exc).__name__} while loading the space file: {one_line(exc)}."
        ) from exc
    finally:
        if added:
            sys.path.remove(folder)
    build_fn, fit_fn = _find_entry_points(module, shown)
    return Space(settings, module, build_fn, fit_fn)


def _find_entry_points(
    module: ModuleType, shown: str
) -> tuple[Callable[..., Any], Callable[..., Any] | None]:
    build = getattr(module, "build", None)
    fit = getattr(module, "fit", None)
    if build is not None:
        if not callable(build):
            raise SpaceError(f"{shown}:1: `build` must be a function build(hp) or build(hp, info).")
        count = positional_count(build)
        if count not in (1, 2):
            line = _line_of(build, Path(module.__file__ or shown))
            raise SpaceError(
                f"{shown}:{line}: build() takes {count} positional arguments; define "
                "build(hp) or build(hp, info)."
            )
        return build, fit if callable(fit) else None
    hypermodel: Any = getattr(module, "hypermodel", None)
    if hypermodel is None:
        hypermodel = _hypermodel_class_instance(module)
    if hypermodel is not None and callable(getattr(hypermodel, "build", None)):
        return hypermodel.build, overridden_fit(hypermodel)
    raise SpaceError(
        f"{shown}:1: the space file defines no build(hp); add `def build(hp):` that returns a "
        "compiled keras.Model (or `hypermodel = MyHyperModel()`)."
    )


def _hypermodel_class_instance(module: ModuleType) -> object | None:
    """A Keras Tuner `HyperModel` subclass defined in the file, instantiated with no arguments."""
    if "keras_tuner" not in sys.modules:
        return None
    import keras_tuner

    for value in vars(module).values():
        if (
            inspect.isclass(value)
            and issubclass(value, keras_tuner.HyperModel)
            and value.__module__ == module.__name__
        ):
            return value()
    return None


def overridden_fit(hypermodel: object) -> Callable[..., Any] | None:
    """A Keras Tuner `HyperModel`'s own `fit`, if its class overrides it (else None)."""
    fit = getattr(hypermodel, "fit", None)
    if fit is None:
        return None
    if "keras_tuner" in sys.modules:
        import keras_tuner

        if getattr(type(hypermodel), "fit", None) is keras_tuner.HyperModel.fit:
            return None
    return fit


def _literal(node: ast.expr, name: str, where: str) -> object:
    # `keras_tuner.Objective("val_accuracy", direction="max")` is read like its literal form.
    if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == (
        "Objective"
    ):
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        metric = args[0] if args else kwargs.get("name")
        direction = args[1] if len(args) > 1 else kwargs.get("direction")
        return (metric, direction)
    try:
        return ast.literal_eval(node)
    except ValueError as exc:
        raise SpaceError(
            f"{where}: {name} must be a literal value (a string, number or tuple) so it can be "
            "read without running the file."
        ) from exc


def takes_arrays(fit: Callable[..., Any]) -> bool:
    """Whether a space's `fit` takes the training data as arrays `x, y` after `hp, model`
    (Keras Tuner's `HyperModel.fit(self, hp, model, x, y, **kwargs)`), not one dataset."""
    try:
        parameters = list(inspect.signature(fit).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 4


def positional_count(fn: Callable[..., Any]) -> int:
    """How many positional parameters `fn` takes (1 when it cannot be inspected)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in signature.parameters.values() if p.kind in kinds)


def _line_of(fn: Callable[..., Any], path: Path) -> int:
    code = getattr(fn, "__code__", None) or getattr(getattr(fn, "__func__", None), "__code__", None)
    if code is not None and Path(code.co_filename).resolve() == path.resolve():
        return int(code.co_firstlineno)
    return 1


def _raising_line(exc: BaseException, path: Path) -> int | None:
    """The line of `path` deepest in the traceback (or in a SyntaxError inside it)."""
    target = str(path.resolve())
    if isinstance(exc, SyntaxError) and exc.filename and os.path.abspath(exc.filename) == target:
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == target:
            line = frame.lineno
    return line
