"""A hypermodel defined anywhere (a notebook cell included), shipped to the workers.

Workers are separate processes (forked from the pool's forkserver, or spawned): they cannot
import a notebook's `__main__`. `ship` pickles the hypermodel (a `build(hp)` /
`build(hp, info)` function or a Keras Tuner `HyperModel`) with cloudpickle, which pickles what
`__main__` defines by value, together with the `fit` arguments the caller gave (callbacks,
class weights), into the study's folder, and writes beside it a
small space file that loads it. From there on it is a space file like any other: its text holds
the hash of what was shipped, so the study's resume check, the workers' check before building,
`automl retrain` and `automl report` all work on it unchanged.

The hash is of the hypermodel's source code where Python can read it (so the same cell run
again in a new kernel resumes the study), else of the pickled bytes, plus the `fit` arguments.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.errors import SpaceError
from automl.spaces.loader import Objective, overridden_fit, takes_arrays
from automl.storage.atomic import write_atomically

PICKLE_SUFFIX = ".pkl"


@dataclass
class Shipment:
    """What a worker unpickles: the hypermodel and the `fit` arguments it is trained with."""

    hypermodel: Any
    callbacks: Sequence[Any] = ()
    fit_kwargs: Mapping[str, Any] = field(default_factory=dict)
    one_hot: int | None = None  # the caller's labels were one-hot, of this many classes


def ship(
    hypermodel: Any,
    folder: Path,
    *,
    objective: Objective,
    epochs: int,
    batch_size: int | None = None,
    callbacks: Sequence[Any] = (),
    fit_kwargs: Mapping[str, Any] | None = None,
    one_hot: int | None = None,
) -> Path:
    """Pickle `hypermodel` into `folder` and write the space file that loads it.

    Returns:
        The space file, `folder/hypermodel-<hash>.py` (a new hash never replaces an old file).

    Raises:
        SpaceError: `hypermodel` is not a build function or a HyperModel, or cannot be pickled.
    """
    import cloudpickle

    build = _build_of(hypermodel)
    shipment = Shipment(hypermodel, tuple(callbacks), dict(fit_kwargs or {}), one_hot)
    try:
        payload = cloudpickle.dumps(shipment)
    except Exception as exc:
        raise SpaceError(
            f"{_name_of(hypermodel)}: cannot be shipped to the workers ({type(exc).__name__}: "
            f"{exc}); keep what build() uses importable or defined in the notebook, not open "
            "files, locks or live models."
        ) from exc
    digest = hashlib.sha256()
    digest.update((_source_of(hypermodel, build) or "").encode("utf-8") or payload)
    digest.update(repr(sorted((k, repr(v)) for k, v in shipment.fit_kwargs.items())).encode())
    digest.update(repr([_describe_callback(c) for c in shipment.callbacks]).encode())
    digest.update(f"one_hot={one_hot}".encode())
    shipped = digest.hexdigest()
    stem = f"hypermodel-{shipped[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    pickle_path = folder / (stem + PICKLE_SUFFIX)
    if not pickle_path.is_file():
        write_atomically(pickle_path, payload)
    space = folder / (stem + ".py")
    text = _SPACE_TEMPLATE.format(
        name=_name_of(hypermodel),
        objective=(objective.metric, objective.direction),
        epochs=epochs,
        batch_size=batch_size,
        pickle=pickle_path.name,
        sha256=shipped,
    )
    if not space.is_file() or space.read_text(encoding="utf-8") != text:
        write_atomically(space, text.encode("utf-8"))
    return space


def entry_points(
    space_file: str, pickle_name: str
) -> tuple[Callable[..., Any], Callable[..., Any] | None]:
    """`build` and `fit` of a shipped hypermodel (what the generated space file defines).

    Raises:
        SpaceError: the pickle is missing or cannot be loaded here.
    """
    import pickle

    path = Path(space_file).resolve().parent / pickle_name
    try:
        shipment: Shipment = pickle.loads(path.read_bytes())
    except FileNotFoundError:
        raise SpaceError(
            f"{path}: the shipped hypermodel is missing; search again from the notebook "
            "(automl.Tuner ships it)."
        ) from None
    except Exception as exc:
        raise SpaceError(
            f"{path}: cannot load the shipped hypermodel ({type(exc).__name__}: {exc}); install "
            "here the packages the notebook's build() uses."
        ) from exc
    hypermodel = shipment.hypermodel
    build = _build_of(hypermodel)
    user_fit = overridden_fit(hypermodel)
    if user_fit is None and not (shipment.callbacks or shipment.fit_kwargs or shipment.one_hot):
        return build, None  # the runner's own fit, as for a space file without fit()

    def fit(hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
        # The caller's callbacks are copied for each trial (a Keras callback holds its model).
        kwargs["callbacks"] = [
            *kwargs.get("callbacks", ()),
            *copy.deepcopy(list(shipment.callbacks)),
        ]
        kwargs = {**shipment.fit_kwargs, **kwargs}
        if shipment.one_hot:
            args, kwargs = _one_hot(shipment.one_hot, args, kwargs)
        if user_fit is not None:
            return user_fit(hp, model, *args, **kwargs)
        return model.fit(*args, **kwargs)

    if user_fit is not None and takes_arrays(user_fit):

        def fit_arrays(hp: Any, model: Any, x: Any, y: Any, **kwargs: Any) -> Any:
            return fit(hp, model, x, y, **kwargs)

        return build, fit_arrays
    return build, fit


def _one_hot(
    classes: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The training data (a dataset, or arrays x, y) and validation data with one-hot labels,
    as a model compiled for one-hot labels (categorical_crossentropy) needs them."""
    import numpy as np
    import tensorflow as tf

    def dataset(data: Any) -> Any:
        return data.map(lambda x, y: (x, tf.one_hot(y, classes)))

    if len(args) >= 2:  # arrays
        args = (args[0], np.eye(classes, dtype=np.float32)[np.asarray(args[1])], *args[2:])
    elif args:
        args = (dataset(args[0]), *args[1:])
    if isinstance(kwargs.get("validation_data"), tf.data.Dataset):
        kwargs["validation_data"] = dataset(kwargs["validation_data"])
    return args, kwargs


def _build_of(hypermodel: Any) -> Callable[..., Any]:
    build = getattr(hypermodel, "build", None)
    if not inspect.isfunction(hypermodel) and callable(build):
        return build
    if callable(hypermodel):
        return hypermodel
    raise SpaceError(
        f"hypermodel: expected a build(hp) function or a keras_tuner.HyperModel, got "
        f"{type(hypermodel).__name__}."
    )


def _name_of(hypermodel: Any) -> str:
    if inspect.isfunction(hypermodel):
        return str(hypermodel.__qualname__)
    return type(hypermodel).__qualname__


def _source_of(hypermodel: Any, build: Callable[..., Any]) -> str | None:
    """The code of the hypermodel (its function, or its class), if Python can read it."""
    try:
        target = hypermodel if inspect.isfunction(hypermodel) else type(hypermodel)
        source = inspect.getsource(target)
    except (OSError, TypeError):
        return None
    if not inspect.isfunction(hypermodel):
        # An instance's settings are part of it too (HyperModel(num_classes=10)).
        state = getattr(hypermodel, "__dict__", {})
        source += "\n" + repr(sorted((k, repr(v)) for k, v in state.items()))
    return textwrap.dedent(source)


def _describe_callback(callback: Any) -> str:
    settings = {
        k: v
        for k, v in vars(callback).items()
        if isinstance(v, (int, float, str, bool, type(None))) and not k.startswith("_")
    }
    return f"{type(callback).__module__}.{type(callback).__qualname__}{sorted(settings.items())}"


_SPACE_TEMPLATE = '''\
"""The hypermodel {name}, shipped by automl.Tuner from where it was defined (cloudpickle).

Its study resumes from the notebook (the same Tuner, search again). `automl show`, `automl
report`, `automl retrain` and `automl export` work on the study as on any other.
"""

OBJECTIVE = {objective!r}
EPOCHS = {epochs!r}
BATCH_SIZE = {batch_size!r}
SHIPPED = {pickle!r}
SHIPPED_SHA256 = {sha256!r}

from automl.spaces.shipped import entry_points as _entry_points  # noqa: E402

build, fit = _entry_points(__file__, SHIPPED)
'''
