"""The `hp` object a search space's `build(hp)` receives.

It speaks the Keras Tuner `HyperParameters` vocabulary (`Int`, `Float`, `Choice`, `Boolean`,
`Fixed`, `conditional_scope`, `get`, `values`) so a Keras Tuner hypermodel runs unchanged. Each
definition becomes a frozen `ParamSpec`; the value is given by a pluggable `Answers` strategy (a
fixed replay, defaults, random samples, or an Optuna trial in another process), so one `build`
serves every engine.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Protocol

from automl.errors import InactiveParameter, SpaceError, UnknownParameter, shown_path

Scalar = int | float | str | bool
Value = int | float | str | bool | None

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_THIS_FILE = os.path.abspath(__file__)
_FLOAT_TOLERANCE = 1e-9


class Kind(str, Enum):
    """The type of a hyperparameter, named as in Keras Tuner."""

    INT = "Int"
    FLOAT = "Float"
    CHOICE = "Choice"
    BOOLEAN = "Boolean"
    FIXED = "Fixed"


@dataclass(frozen=True)
class Condition:
    """`parent` must take one of `values` for a parameter defined under it to be active."""

    parent: str
    values: tuple[Scalar, ...]

    def holds(self, values: Mapping[str, Value]) -> bool:
        return self.parent in values and _contains_exact(self.values, values[self.parent])

    def describe(self) -> str:
        shown = ", ".join(_show(v) for v in self.values)
        return f"{self.parent} in [{shown}]"


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter definition met while building a model.

    Attributes:
        name: the parameter name, unique within a space.
        kind: its type.
        low: lower bound (Int, Float), inclusive.
        high: upper bound (Int, Float), inclusive.
        step: distance between values on a linear scale, multiplier on a log scale; None means
            continuous (Float) or 1 (Int, linear).
        log: whether values are spread on a log scale.
        choices: the values of a Choice (and of Boolean / Fixed, for uniform handling).
        ordered: whether the choices are ordered numbers.
        default: the value a dry run uses.
        conditions: the enclosing `conditional_scope`s.
        location: `file:line` of the definition, for messages.
    """

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Scalar, ...] = ()
    ordered: bool = False
    default: Value = None
    conditions: tuple[Condition, ...] = ()
    location: str = field(default="", compare=False)

    def same_definition(self, other: ParamSpec) -> bool:
        """Whether two definitions describe the same parameter (conditions aside)."""
        return (
            self.kind == other.kind
            and self.low == other.low
            and self.high == other.high
            and self.step == other.step
            and self.log == other.log
            and _same_values(self.choices, other.choices)
            and _same_values((self.default,), (other.default,))
        )

    def grid(self) -> tuple[Scalar, ...] | None:
        """Every value the parameter can take, or None when it is continuous."""
        if self.kind in (Kind.CHOICE, Kind.BOOLEAN, Kind.FIXED):
            return self.choices
        assert self.low is not None and self.high is not None
        if self.kind is Kind.INT and self.step is None and not self.log:
            return tuple(range(int(self.low), int(self.high) + 1))
        if self.step is None:
            return None
        values: list[Scalar] = []
        if self.log:
            value = self.low
            while value <= self.high * (1 + _FLOAT_TOLERANCE):
                values.append(round(value) if self.kind is Kind.INT else value)
                value *= self.step
        else:
            count = math.floor((self.high - self.low) / self.step + _FLOAT_TOLERANCE) + 1
            for i in range(count):
                value = self.low + i * self.step
                values.append(round(value) if self.kind is Kind.INT else round(value, 12))
        return tuple(values)

    def contains(self, value: Value) -> bool:
        """Whether `value` is one this definition can produce."""
        if self.kind in (Kind.CHOICE, Kind.BOOLEAN, Kind.FIXED):
            return _contains_exact(self.choices, value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is Kind.INT and not float(value).is_integer():
            return False
        assert self.low is not None and self.high is not None
        span = max(abs(self.high), 1.0) * _FLOAT_TOLERANCE
        if not self.low - span <= value <= self.high + span:
            return False
        if self.step is None:
            return True
        grid = self.grid() or ()
        return any(math.isclose(value, g, rel_tol=1e-7, abs_tol=1e-12) for g in grid)  # type: ignore[arg-type]

    def describe(self) -> str:
        """A short human description: `Int [1, 4] step 1`, `Float [1e-05, 0.01] log`, …"""
        if self.kind in (Kind.CHOICE, Kind.BOOLEAN):
            return "{" + ", ".join(_show(v) for v in self.choices) + "}"
        if self.kind is Kind.FIXED:
            return _show(self.default)
        text = f"[{_show(self.low)}, {_show(self.high)}]"
        if self.step is not None:
            text += f" {'×' if self.log else 'step '}{_show(self.step)}"
        return text

    @property
    def scale(self) -> str:
        if self.kind in (Kind.INT, Kind.FLOAT):
            return "log" if self.log else "linear"
        return "ordered" if self.ordered else "-"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored with a study."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "low": self.low,
            "high": self.high,
            "step": self.step,
            "log": self.log,
            "choices": list(self.choices),
            "ordered": self.ordered,
            "default": self.default,
            "conditions": [[c.parent, list(c.values)] for c in self.conditions],
            "location": self.location,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParamSpec:
        return cls(
            name=data["name"],
            kind=Kind(data["kind"]),
            low=data.get("low"),
            high=data.get("high"),
            step=data.get("step"),
            log=bool(data.get("log", False)),
            choices=tuple(data.get("choices", ())),
            ordered=bool(data.get("ordered", False)),
            default=data.get("default"),
            conditions=tuple(Condition(p, tuple(v)) for p, v in data.get("conditions", ())),
            location=data.get("location", ""),
        )


class Answers(Protocol):
    """Gives the value of an active hyperparameter the first time it is met in a build."""

    def answer(self, spec: ParamSpec) -> Value: ...


class DefaultAnswers:
    """Answers every parameter with its default: the dry run behind `automl check`."""

    def answer(self, spec: ParamSpec) -> Value:
        return spec.default


class HyperParameters:
    """The `hp` argument of `build(hp)`.

    Every definition is validated and recorded in `space` (active or not, as in Keras Tuner); an
    active one is answered once by `answers`, and repeating the same call returns the same value.
    An inactive one (under a `conditional_scope` whose condition fails) returns None.

    Args:
        answers: where values come from. Defaults to `DefaultAnswers()`.
        values: values known before any definition (a finished trial's, as Keras Tuner's
            `get_best_hyperparameters` gives them): `values` and `get` answer them at once,
            and a build that defines them gets them. Defaults to none.
    """

    def __init__(
        self, answers: Answers | None = None, values: Mapping[str, Value] | None = None
    ) -> None:
        self._answers: Answers = answers if answers is not None else DefaultAnswers()
        self._specs: dict[str, list[ParamSpec]] = {}
        self._values: dict[str, Value] = dict(values or {})
        self._conditions: list[Condition] = []
        self.space: list[ParamSpec] = []
        self.scope_parents: set[str] = set()

    # -- the Keras Tuner vocabulary -------------------------------------------------------------

    def Int(
        self,
        name: str,
        min_value: int,
        max_value: int,
        step: int | None = None,
        sampling: str | None = "linear",
        default: int | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        """An integer in `[min_value, max_value]` (both included).

        Args:
            name: the parameter name.
            min_value: lower bound, included.
            max_value: upper bound, included.
            step: distance between values (linear) or multiplier between values (log).
                Defaults to `1` on a linear scale and to any integer on a log scale.
            sampling: `"linear"`, `"log"` or `"reverse_log"` (searched linearly). Defaults to
                `"linear"`.
            default: value of a dry run. Defaults to `min_value`.
            parent_name: like an enclosing `conditional_scope(parent_name, parent_values)`.
            parent_values: see `parent_name`.
        """
        where = _definition_site()
        low = _as_int(min_value, "min_value", name, where)
        high = _as_int(max_value, "max_value", name, where)
        log = _parse_sampling(sampling, name, where)
        int_step = None if step is None else _as_int(step, "step", name, where)
        if int_step is None and not log:
            int_step = 1
        _check_bounds(name, "Int", low, high, int_step, log, where)
        spec = ParamSpec(
            name=_check_name(name, where),
            kind=Kind.INT,
            low=low,
            high=high,
            step=int_step,
            log=log,
            default=low if default is None else default,
            location=where,
        )
        return self._retrieve(spec, parent_name, parent_values)

    def Float(
        self,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str | None = "linear",
        default: float | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        """A float in `[min_value, max_value]`.

        Args:
            name: the parameter name.
            min_value: lower bound, included.
            max_value: upper bound, included.
            step: distance between values (linear) or multiplier between values (log).
                Defaults to `None`: any value in the range.
            sampling: `"linear"`, `"log"` or `"reverse_log"` (searched linearly). Defaults to
                `"linear"`.
            default: value of a dry run. Defaults to `min_value`.
            parent_name: like an enclosing `conditional_scope(parent_name, parent_values)`.
            parent_values: see `parent_name`.
        """
        where = _definition_site()
        low = _as_float(min_value, "min_value", name, where)
        high = _as_float(max_value, "max_value", name, where)
        float_step = None if step is None else _as_float(step, "step", name, where)
        log = _parse_sampling(sampling, name, where)
        _check_bounds(name, "Float", low, high, float_step, log, where)
        default_value = low if default is None else _as_float(default, "default", name, where)
        spec = ParamSpec(
            name=_check_name(name, where),
            kind=Kind.FLOAT,
            low=low,
            high=high,
            step=float_step,
            log=log,
            default=default_value,
            location=where,
        )
        return self._retrieve(spec, parent_name, parent_values)

    def Choice(
        self,
        name: str,
        values: Sequence[Scalar],
        ordered: bool | None = None,
        default: Scalar | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        """One of `values`.

        Args:
            name: the parameter name.
            values: the choices: scalars (int, float, str or bool), all of one type.
            ordered: whether the values are ordered numbers. Defaults to `True` for numbers.
            default: value of a dry run. Defaults to the first value.
            parent_name: like an enclosing `conditional_scope(parent_name, parent_values)`.
            parent_values: see `parent_name`.
        """
        where = _definition_site()
        choices = _check_choices(name, values, where)
        numeric = not isinstance(choices[0], (bool, str))
        if ordered and not numeric:
            raise SpaceError(
                f"{where}: Choice '{name}' has ordered=True but its values {list(choices)} are "
                "not numbers; drop `ordered` or use numeric values."
            )
        spec = ParamSpec(
            name=_check_name(name, where),
            kind=Kind.CHOICE,
            choices=choices,
            ordered=numeric if ordered is None else bool(ordered),
            default=choices[0] if default is None else default,
            location=where,
        )
        return self._retrieve(spec, parent_name, parent_values)

    def Boolean(
        self,
        name: str,
        default: bool = False,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        """True or False.

        Args:
            name: the parameter name.
            default: value of a dry run. Defaults to `False`.
            parent_name: like an enclosing `conditional_scope(parent_name, parent_values)`.
            parent_values: see `parent_name`.
        """
        where = _definition_site()
        spec = ParamSpec(
            name=_check_name(name, where),
            kind=Kind.BOOLEAN,
            choices=(False, True),
            default=bool(default),
            location=where,
        )
        return self._retrieve(spec, parent_name, parent_values)

    def Fixed(
        self,
        name: str,
        value: Scalar,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        """A constant that is recorded with the trial but never searched.

        Args:
            name: the parameter name.
            value: the constant (int, float, str or bool).
            parent_name: like an enclosing `conditional_scope(parent_name, parent_values)`.
            parent_values: see `parent_name`.
        """
        where = _definition_site()
        (checked,) = _check_choices(name, [value], where)
        spec = ParamSpec(
            name=_check_name(name, where),
            kind=Kind.FIXED,
            choices=(checked,),
            default=checked,
            location=where,
        )
        return self._retrieve(spec, parent_name, parent_values)

    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        """Parameters defined inside are active only when `parent_name` is in `parent_values`.

        The code inside runs either way (as in Keras Tuner); an inactive definition returns None.

        Args:
            parent_name: name of a parameter already defined in this build.
            parent_values: one value or a list of values of the parent.
        """
        condition = self._condition(parent_name, parent_values, _definition_site())
        self.scope_parents.add(parent_name)
        self._conditions.append(condition)
        try:
            yield
        finally:
            self._conditions.pop()

    @property
    def values(self) -> dict[str, Value]:
        """The values of the active parameters met so far."""
        return dict(self._values)

    def get(self, name: str) -> Value:
        """The value of an active parameter.

        Raises:
            UnknownParameter: (a KeyError) no parameter has this name.
            InactiveParameter: (a ValueError) it is outside the active conditional scope.
        """
        if name in self._values:
            return self._values[name]
        if name in self._specs:
            raise InactiveParameter(f"{name} is currently inactive.")
        raise UnknownParameter(f"{name} does not exist.")

    def __getitem__(self, name: str) -> Value:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._values

    def is_active(self, spec: ParamSpec) -> bool:
        return all(c.holds(self._values) for c in spec.conditions)

    # -- internals ----------------------------------------------------------------------------

    def _condition(self, parent_name: str, parent_values: Any, where: str) -> Condition:
        if parent_name not in self._specs:
            raise SpaceError(
                f"{where}: conditional_scope('{parent_name}', …) names a parameter that is not "
                f"defined yet; define '{parent_name}' (e.g. with hp.Choice) before the scope."
            )
        if isinstance(parent_values, (list, tuple, set, frozenset)):
            values = tuple(parent_values)
        else:
            values = (parent_values,)
        if not values:
            raise SpaceError(
                f"{where}: conditional_scope('{parent_name}', []) has no parent values; "
                "give at least one."
            )
        return Condition(parent_name, values)

    def _retrieve(self, spec: ParamSpec, parent_name: str | None, parent_values: Any) -> Value:
        conditions = list(self._conditions)
        if parent_name is not None:
            conditions.append(self._condition(parent_name, parent_values, spec.location))
        spec = replace(spec, conditions=tuple(conditions))
        if not spec.contains(spec.default):
            raise SpaceError(
                f"{spec.location}: {spec.kind.value} '{spec.name}' has default "
                f"{_show(spec.default)} outside its values {spec.describe()}; pick a default "
                "inside the range."
            )
        known = self._specs.get(spec.name, [])
        for other in known:
            if not other.same_definition(spec):
                raise SpaceError(
                    f"{spec.location}: hyperparameter '{spec.name}' is defined again as "
                    f"{spec.kind.value} {spec.describe()} but was {other.kind.value} "
                    f"{other.describe()} at {other.location}; give one of them another name."
                )
        if not any(other.conditions == spec.conditions for other in known):
            self._specs.setdefault(spec.name, []).append(spec)
            self.space.append(spec)
        if not self.is_active(spec):
            return None
        if spec.name not in self._values:
            value = spec.default if spec.kind is Kind.FIXED else self._answers.answer(spec)
            if not spec.contains(value):
                raise SpaceError(
                    f"{spec.location}: value {_show(value)} given for '{spec.name}' is not in "
                    f"{spec.kind.value} {spec.describe()}; the space changed since that value "
                    "was chosen, or the value is wrong."
                )
            self._values[spec.name] = _normalise(spec, value)
        return self._values[spec.name]


# -- validation helpers ---------------------------------------------------------------------------


def _definition_site() -> str:
    """`file:line` of the user code that made the current `hp` call."""
    frame = sys._getframe(1)
    fallback = ""
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if filename != _THIS_FILE and "contextlib" not in filename:
            if not fallback:
                fallback = f"{shown_path(filename)}:{frame.f_lineno}"
            if not filename.startswith(_PACKAGE_DIR + os.sep):
                return f"{shown_path(filename)}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return fallback or "<unknown>"


def _check_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise SpaceError(
            f"{where}: a hyperparameter name must be a non-empty string, got {name!r}."
        )
    return name


def _as_int(value: object, arg: str, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise SpaceError(f"{where}: Int '{name}' needs an integer {arg}, got {value!r}.")
    return int(value)


def _as_float(value: object, arg: str, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise SpaceError(f"{where}: Float '{name}' needs a number for {arg}, got {value!r}.")
    return float(value)


def _parse_sampling(sampling: str | None, name: str, where: str) -> bool:
    """Whether values are spread on a log scale.

    Keras Tuner's `"reverse_log"` (values dense near `max_value`) is searched on a linear
    scale: Optuna has no mirrored log scale, and a mirrored parameter would be stored as the
    mirror of its value. TPE still learns where the good values lie.
    """
    if sampling in (None, "linear", "reverse_log"):
        return False
    if sampling == "log":
        return True
    raise SpaceError(
        f"{where}: '{name}' has sampling={sampling!r}; use sampling='linear', 'log' or "
        "'reverse_log'."
    )


def _check_bounds(
    name: str, kind: str, low: float, high: float, step: float | None, log: bool, where: str
) -> None:
    if low > high:
        raise SpaceError(
            f"{where}: {kind} '{name}': `min_value <= max_value` must hold, but got "
            f"(min_value={_show(low)}, max_value={_show(high)}); swap them."
        )
    if log and low <= 0:
        raise SpaceError(
            f"{where}: {kind} '{name}': sampling='log' needs min_value > 0, but got "
            f"min_value={_show(low)}; raise min_value or use sampling='linear'."
        )
    if step is None:
        return
    if step <= 0 or (log and step <= 1):
        need = "greater than 1 (a multiplier) with sampling='log'" if log else "positive"
        raise SpaceError(
            f"{where}: {kind} '{name}': step must be {need}, but got step={_show(step)}."
        )
    if high > low:
        span = high / low if log else high - low
        if step > span * (1 + _FLOAT_TOLERANCE):
            raise SpaceError(
                f"{where}: {kind} '{name}': step={_show(step)} is larger than the range "
                f"[{_show(low)}, {_show(high)}]; use a smaller step or a wider range."
            )


def _check_choices(name: str, values: Any, where: str) -> tuple[Scalar, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise SpaceError(
            f"{where}: Choice '{name}' needs a list of values, got {values!r}; "
            "write e.g. hp.Choice(name, [16, 32, 64])."
        )
    if len(values) == 0:
        raise SpaceError(f"{where}: Choice '{name}' has no values; give at least one value.")
    for value in values:
        if not isinstance(value, (int, float, str, bool)):
            raise SpaceError(
                f"{where}: '{name}' has the value {value!r} of type {type(value).__name__}; "
                "values must be int, float, str or bool — choose by a name (a string) and "
                "map it to the object inside build()."
            )
    kinds = {type(v) for v in values}
    if len(kinds) > 1:
        names = ", ".join(sorted(k.__name__ for k in kinds))
        raise SpaceError(
            f"{where}: Choice '{name}' mixes value types ({names}) in {list(values)}; "
            "use values of one type."
        )
    if len({(type(v), v) for v in values}) != len(values):
        raise SpaceError(f"{where}: Choice '{name}' repeats a value in {list(values)}.")
    return tuple(values)


def _contains_exact(values: Sequence[Scalar], value: object) -> bool:
    # `True == 1` in Python; a Choice of ints must not accept True.
    return any(type(v) is type(value) and v == value for v in values) or (
        isinstance(value, int)
        and not isinstance(value, bool)
        and any(type(v) is float and v == value for v in values)
    )


def _same_values(a: Sequence[Value], b: Sequence[Value]) -> bool:
    return len(a) == len(b) and all(
        type(x) is type(y) and x == y for x, y in zip(a, b, strict=False)
    )


def _normalise(spec: ParamSpec, value: Value) -> Value:
    if spec.kind is Kind.INT and isinstance(value, float):
        return int(value)
    if spec.kind is Kind.FLOAT and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
