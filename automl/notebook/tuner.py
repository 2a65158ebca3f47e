"""`automl.Tuner`: Keras Tuner's API over the same engine as `automl search`.

A Keras Tuner notebook switches by replacing `keras_tuner.RandomSearch(...)` with
`automl.Tuner(...)`: the same `build(hp)` (or `HyperModel`), `search(x, y, validation_data=…)`,
`get_best_models`, `get_best_hyperparameters` and `results_summary`, now with trials in parallel
on every GPU (or CPU slots), pruning, a resumable store, the report, retraining and export.

The hypermodel is shipped to the worker processes pickled (`automl.spaces.shipped`), and the
arrays are searched as a `Dataset` saved in the study's folder, as the CLI saves its data; a
`tf.data` pipeline is written once into that folder, a batch at a time, and memory-mapped by
every worker (`automl.data.streamed`).
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl.errors import DataError, UsageError
from automl.search.config import SearchConfig
from automl.search.events import SearchSummary
from automl.search.seeds import seed_problem
from automl.spaces.loader import Objective
from automl.storage.urls import check_study_name, study_name_from

# `fit` arguments the engine sets itself, with what to use instead.
_ENGINE_FIT_ARGUMENTS = {
    "x": "pass the data to search()",
    "y": "pass the data to search()",
    "initial_epoch": "trials resume on their own",
    "steps_per_epoch": "every epoch covers the training split",
    "validation_steps": "validation covers the whole validation split",
    "validation_batch_size": "the engine sizes validation batches",
    "validation_freq": "the pruner needs the objective after every epoch",
    "sample_weight": "use class_weight",
}


@dataclass(frozen=True)
class _Data:
    """What search() was given: a data source as on the CLI, or a `Dataset` of arrays."""

    spec: str | None
    dataset: Any
    options: Any
    one_hot: int | None = None  # the labels were one-hot, of this many classes
    # tf.data pipelines (train, validation, test), written into the study's folder by search()
    pipelines: tuple[Any, Any, Any] | None = None


class Tuner:
    """Search `hypermodel` as Keras Tuner's tuners do, on automl's engine.

    Args:
        hypermodel: `build(hp)`, `build(hp, info)` or a `keras_tuner.HyperModel`, defined
            anywhere (a notebook cell included).
        objective: the metric, e.g. `"val_accuracy"`, `"val_loss"`, `("val_auc", "max")` or a
            `keras_tuner.Objective`. Defaults to `"val_accuracy"`.
        max_trials: the study's total of finished trials, as `--trials`. Defaults to `10`.
        max_epochs: epochs per trial (`search(epochs=…)` overrides). Defaults to `10`.
        study: the study's name (Keras Tuner's `project_name` is accepted too). Defaults to
            the hypermodel's name.
        storage: the store's URL. Defaults to `directory/automl.db`.
        workers: CPU workers when there is no GPU. Defaults to one per core, up to 8.
        gpus: GPU indices to use. Defaults to every visible GPU.
        trials_per_gpu: trials packed on each GPU. Defaults to `1`.
        sampler: as `--sampler`. Defaults to `"tpe"`.
        pruner: as `--pruner`. Defaults to `"sha"`.
        min_epochs: as `--min-epochs`: epochs every trial trains before `"sha"` or
            `"hyperband"` may prune it. Defaults to `1` (a resumed study keeps its own).
        seed: seed of the sampler and trials. Defaults to `0`.
        directory: the folder of the store and of the studies' files. Defaults to `runs`, as
            `automl search` (so `automl show` there reads the study).
        overwrite: delete the study (and its folder) before the first search. Defaults to
            `False`: a study of that name resumes.
        patience: early-stopping patience in epochs, None for none (as Keras Tuner: the
            pruner stops poor trials). Defaults to `None`.
        tensorboard: a folder for TensorBoard logs of every trial (scalars, HParams).
            Defaults to `None`.
        deterministic: TensorFlow op determinism with fixed thread counts, so that
            `automl trial --replay STUDY:N` reproduces a trial exactly (slower). Defaults to
            `False`.
        executions_per_trial: models trained per configuration with different seeds; the
            objective, pruning and early stopping follow their mean (`--repeats`). Defaults
            to `1`.
        max_consecutive_failed_trials: stop after this many failures in a row. Defaults to `5`.
        **keras_tuner_arguments: Keras Tuner's other arguments, accepted at their defaults
            (`max_retries_per_trial=0`, `tune_new_entries=True`, …); another value is refused
            with what to do instead.
    """

    def __init__(
        self,
        hypermodel: Any,
        objective: Any = "val_accuracy",
        max_trials: int = 10,
        max_epochs: int | None = None,
        study: str | None = None,
        storage: str | None = None,
        workers: int | None = None,
        gpus: Sequence[int] | None = None,
        trials_per_gpu: int = 1,
        sampler: str = "tpe",
        pruner: str = "sha",
        seed: int | None = None,
        directory: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        *,
        project_name: str | None = None,
        patience: int | None = None,
        min_epochs: int | None = None,
        max_consecutive_failed_trials: int = 5,
        executions_per_trial: int = 1,
        tensorboard: str | os.PathLike[str] | None = None,
        deterministic: bool = False,
        **keras_tuner_arguments: Any,
    ) -> None:
        _check_keras_tuner_arguments(keras_tuner_arguments)
        if (
            isinstance(executions_per_trial, bool)
            or not isinstance(executions_per_trial, int)
            or executions_per_trial < 1
        ):
            raise UsageError(
                f"executions_per_trial must be a positive integer, got {executions_per_trial!r}."
            )
        self.executions_per_trial = executions_per_trial
        self._shipped = hypermodel
        self.hypermodel: Any = (
            _FunctionHyperModel(hypermodel, self) if inspect.isfunction(hypermodel) else hypermodel
        )
        self.objective = _objective(objective)
        if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
            raise UsageError(f"max_trials must be a positive integer, got {max_trials!r}.")
        self.max_trials = max_trials
        self.max_epochs = max_epochs
        self.directory = Path(directory) if directory is not None else Path("runs")
        self.study_name = check_study_name(study or project_name or _default_name(hypermodel))
        self.storage = storage or f"sqlite:///{self.directory.resolve() / 'automl.db'}"
        self.workers = workers
        self.gpus = tuple(gpus) if gpus is not None else None
        self.trials_per_gpu = trials_per_gpu
        self.sampler = sampler
        self.pruner = pruner
        self.seed = 0 if seed is None else seed
        problem = seed_problem(self.seed)
        if problem is not None:
            raise UsageError(f"seed {problem}.")
        self.patience = patience
        if min_epochs is not None and (
            isinstance(min_epochs, bool) or not isinstance(min_epochs, int) or min_epochs < 1
        ):
            raise UsageError(f"min_epochs must be a positive integer, got {min_epochs!r}.")
        self.min_epochs = min_epochs
        self.deterministic = deterministic
        self.max_failures = max_consecutive_failed_trials
        self.tensorboard = os.fspath(tensorboard) if tensorboard is not None else None
        self._overwrite = overwrite
        self.last_search: SearchSummary | None = None

    # -- searching --------------------------------------------------------------------------

    def search(
        self,
        x: Any = None,
        y: Any = None,
        validation_data: Any = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        callbacks: Sequence[Any] | None = None,
        *,
        validation_split: float | None = None,
        test_data: Any = None,
        verbose: Any = None,
        quiet: bool = False,
        **fit_kwargs: Any,
    ) -> None:
        """Search (or resume) the study to `max_trials` finished trials.

        How it ended is `last_search` (a `SearchSummary`), None after an interrupt.

        Args:
            x: images as an array (n, height, width[, channels]) with labels `y`; a
                `tf.data.Dataset` of (image, label), batched or not (written once into the
                study's folder, then read by every worker from there); or a data source as on
                the command line (`"digits"`, an image folder, an `.npz` file).
            y: integer class labels for `x`.
            validation_data: `(x_val, y_val)` (a `tf.data.Dataset` with one); else
                `validation_split` of `x` (default 0.2).
            epochs: epochs per trial. Defaults to `max_epochs`, else 10.
            batch_size: where the hypermodel has no `batch_size` hyperparameter. Defaults to 32.
            callbacks: Keras callbacks added to every trial's `fit` (copied for each trial).
            validation_split: the fraction of `x` validated on, without `validation_data`.
            test_data: `(x_test, y_test)` for retraining and the report; else 10 % of `x`.
            verbose: accepted for Keras Tuner's signature; progress shows either way.
            quiet: print only the final summary.
            **fit_kwargs: other `fit` arguments for every trial (`class_weight`, …).

        A `KeyboardInterrupt` (the notebook's stop button, Ctrl-C) stops it cleanly: running
        trials are recorded and re-queued, control returns, and `search` again resumes them.
        """
        del verbose
        for name, instead in _ENGINE_FIT_ARGUMENTS.items():
            if name in fit_kwargs:
                raise UsageError(f"search(): {name} is not accepted here: {instead}.")
        data = self._data(x, y, validation_data, validation_split, test_data)
        from automl.search import run_search
        from automl.storage.store import StudyStore

        store = StudyStore(self.storage, create=True, create_folder=True)
        artifacts = store.artifacts(self.study_name)
        if self._overwrite:
            store.delete_study(self.study_name)
            if artifacts.root.is_dir():
                shutil.rmtree(artifacts.root)
            self._overwrite = False  # a second search() resumes what the first started
        if data.pipelines is not None:
            from automl.data.streamed import save_tf_data

            dataset, one_hot = save_tf_data(
                *data.pipelines,
                artifacts.root,
                val_split=data.options.val_split,
                test_split=data.options.test_split,
                scale=self._scale_images,
            )
            data = _Data(None, dataset, data.options, one_hot)
        epochs = epochs or self.max_epochs or 10
        space = self._space(
            artifacts.root,
            epochs=epochs,
            batch_size=batch_size,
            callbacks=list(callbacks or ()),
            fit_kwargs=fit_kwargs,
            one_hot=data.one_hot,
        )
        config = SearchConfig(
            space=str(space),
            trials=self.max_trials,
            study=self.study_name,
            storage=self.storage,
            data=data.spec,
            data_options=data.options,
            epochs=epochs,
            workers=self.workers,
            gpus=self.gpus,
            trials_per_gpu=self.trials_per_gpu,
            sampler=self.sampler,
            pruner=self.pruner,
            min_epochs=self.min_epochs,
            seed=self.seed,
            objective=f"{self.objective.metric}:{self.objective.direction}",
            max_failures=self.max_failures,
            patience=self.patience,
            tensorboard=self.tensorboard,
            repeats=self.executions_per_trial,
            deterministic=self.deterministic,
        )
        from rich.console import Console

        from automl.cli.common import storage_flag_note, storage_flag_suffix
        from automl.cli.progress import make_progress
        from automl.cli.study_commands import render_summary

        console = Console(file=sys.stdout, highlight=False)
        progress = make_progress(console, quiet=quiet)
        try:
            summary = run_search(config, progress, dataset=data.dataset)
        except KeyboardInterrupt:
            progress.close()
            self.last_search = None
            console.print(
                "Interrupted: running trials were recorded and re-queued; search() again "
                "resumes the study.",
                markup=False,
            )
            return
        finally:
            progress.close()
        stored = self._storage_args()
        render_summary(
            console,
            summary,
            storage_flag=storage_flag_suffix(stored),
            storage_note=storage_flag_note(stored),
        )
        self.last_search = summary

    # Whether arrays are image pixels for the zoo's models ([0, 1] floats scaled to [0, 255]),
    # rather than a notebook model's input as it was written to take it.
    _scale_images = False

    def _space(self, folder: Path, **shipping: Any) -> Path:
        """The space file searched: the hypermodel shipped into the study's folder."""
        from automl.spaces.shipped import ship

        return ship(self._shipped, folder, objective=self.objective, **shipping)

    def _data(
        self, x: Any, y: Any, validation_data: Any, validation_split: float | None, test: Any
    ) -> _Data:
        if x is None:
            raise DataError("search() needs data: x and y arrays, or a source such as 'digits'.")
        if isinstance(x, (str, os.PathLike)):
            if y is not None or validation_data is not None:
                raise DataError(
                    f"search({str(x)!r}): a data source brings its own labels and splits; "
                    "give no y or validation_data with it."
                )
            return _Data(os.fspath(x), None, _options(validation_split))
        if _is_tf_dataset(x):
            if y is not None:
                raise DataError("search(x): x is a tf.data.Dataset of (image, label); give no y.")
            for given, where in ((validation_data, "validation_data"), (test, "test_data")):
                if given is not None and not _is_tf_dataset(given):
                    raise DataError(
                        f"search(): x is a tf.data.Dataset, so {where} must be one too, "
                        f"not {type(given).__name__}."
                    )
            return _Data(None, None, _options(validation_split), None, (x, validation_data, test))
        if y is None:
            raise DataError("search(x, y): y (the integer class labels of x) is missing.")
        from automl.data.sources import dataset_from_arrays

        y, classes = _from_one_hot(y, "y")
        if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
            x_val, y_val = validation_data
            validation_data = (x_val, _from_one_hot(y_val, "y of validation_data")[0])
        if isinstance(test, (tuple, list)) and len(test) == 2:
            test = (test[0], _from_one_hot(test[1], "y of test_data")[0])
        options = _options(validation_split)
        dataset = dataset_from_arrays(
            x, y, validation_data, test, options, source="arrays", scale=self._scale_images
        )
        return _Data(None, dataset, options, classes)

    def _storage_args(self) -> argparse.Namespace:
        """The store as the CLI's suggestion helpers read it: None when `automl show` run in
        this folder finds it without `--storage`."""
        from automl.storage.urls import default_storage_url

        return argparse.Namespace(
            storage=None if self.storage == default_storage_url() else self.storage
        )

    # -- results ----------------------------------------------------------------------------

    @property
    def study(self) -> Any:
        """The Optuna study (`optuna.Study`): every Optuna tool works on it."""
        from automl.storage.store import StudyStore

        return StudyStore(self.storage).load_study(self.study_name)

    def space_info(self) -> Any:
        """What `build(hp, info)` learns about the study's data (`SpaceInfo`)."""
        from automl.data import load_saved_dataset
        from automl.spaces.loader import SpaceInfo
        from automl.storage.store import StudyStore

        path = StudyStore(self.storage).artifacts(self.study_name).dataset_path
        if not path.is_file():
            raise UsageError(f"study {self.study_name!r} has no data yet; run search() first.")
        dataset = load_saved_dataset(path)
        return SpaceInfo(
            dataset.input_shape,
            dataset.num_classes,
            dataset.class_names,
            train_size=len(dataset.train),
            epochs=self.max_epochs or 10,
        )

    def _record(self) -> Any:
        from automl.storage.store import StudyStore

        return StudyStore(self.storage).record(self.study_name)

    def _best_trials(self, num_trials: int) -> list[Any]:
        ranked = [t for t in self._record().ranked() if t.state.value == "complete"]
        if not ranked:
            raise UsageError(
                f"study {self.study_name!r} has no complete trial yet; run search() first."
            )
        return list(ranked[:num_trials])

    def get_best_hyperparameters(self, num_trials: int = 1) -> list[Any]:
        """The best trials' hyperparameters, best first: `.values`, `.get(name)`, and usable
        as `hp` to build the model again (`tuner.hypermodel.build(hp)`)."""
        from automl.spaces.hyperparameters import HyperParameters
        from automl.spaces.replay import FixedAnswers

        return [
            HyperParameters(FixedAnswers(dict(t.params), missing="default"), values=t.params)
            for t in self._best_trials(num_trials)
        ]

    def get_best_models(self, num_models: int = 1) -> list[Any]:
        """The best trials' models at their best epoch, best first (their checkpoints).

        Raises:
            UsageError: a trial's checkpoint was not kept (raise `keep_checkpoints` on the
                CLI, or retrain it with `retrain()`).
        """
        import keras

        from automl.storage.store import StudyStore

        artifacts = StudyStore(self.storage).artifacts(self.study_name)
        kept = artifacts.checkpoints()
        models = []
        for trial in self._best_trials(num_models):
            if trial.number not in kept:
                raise UsageError(
                    f"trial {trial.number}'s checkpoint was not kept (the best 3 are); ask for "
                    "fewer models, or retrain it with tuner.retrain(top_k=…)."
                )
            models.append(keras.saving.load_model(kept[trial.number], safe_mode=True))
        return models

    def results_summary(self, num_trials: int = 10) -> None:
        """Print the best trials as Keras Tuner does: parameters and score of each."""
        record = self._record()
        print("Results summary")
        print(f"Results in {self.directory / self.study_name}")
        print(f"Showing {num_trials} best trials")
        print(f"Objective(name={record.metric!r}, direction={record.direction!r})")
        for trial in [t for t in record.ranked() if t.value is not None][:num_trials]:
            print()
            print(f"Trial {trial.number:02d} summary ({trial.state.value})")
            print("Hyperparameters:")
            for name, value in trial.params.items():
                print(f"{name}: {value}")
            print(f"Score: {trial.value}")

    def report(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the study's HTML report (default: its folder's `report.html`)."""
        from automl.reports import write_report

        return write_report(self.study_name, storage=self.storage, output=path)

    def retrain(self, top_k: int = 1, **kwargs: Any) -> list[Any]:
        """Retrain the best `top_k` configurations on train + val and score them on the test
        split (as `automl retrain`); the results go to the report and to `export`."""
        from automl.deploy import retrain_study

        return retrain_study(self.study_name, storage=self.storage, top_k=top_k, **kwargs)

    def export(
        self,
        directory: str | os.PathLike[str],
        formats: Sequence[str] = ("keras", "savedmodel", "tflite"),
        **kwargs: Any,
    ) -> Any:
        """Export the winner (retrained if `retrain` ran, else its checkpoint), as
        `automl export`."""
        from automl.deploy import export_study

        return export_study(
            self.study_name, storage=self.storage, output=directory, formats=formats, **kwargs
        )


class _FunctionHyperModel:
    """A build function as Keras Tuner holds one: `tuner.hypermodel.build(hp)` builds the
    model again (with the study's data description for `build(hp, info)`)."""

    def __init__(self, build: Any, tuner: Tuner) -> None:
        self._build = build
        self._tuner = tuner

    def build(self, hp: Any) -> Any:
        from automl.spaces.loader import positional_count

        if positional_count(self._build) < 2:
            return self._build(hp)
        return self._build(hp, self._tuner.space_info())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._build(*args, **kwargs)


def _objective(value: Any) -> Objective:
    name = getattr(value, "name", None)
    if isinstance(name, str) and hasattr(value, "direction"):  # keras_tuner.Objective
        return Objective.parse((name, value.direction), "objective")
    return Objective.parse(value, "objective")


# Keras Tuner's tuner arguments that have no counterpart here: their default, and what to do.
_KERAS_TUNER_ONLY = {
    "hyperparameters": (
        None,
        "fix or narrow a parameter inside build(hp) instead (hp.Fixed, or a smaller range)",
    ),
    "tune_new_entries": (True, "every parameter build(hp) defines is searched; use hp.Fixed"),
    "allow_new_entries": (True, "every parameter build(hp) defines is searched; use hp.Fixed"),
    "max_retries_per_trial": (
        0,
        "a trial whose worker dies (out of memory, killed) is retried once on its own; an "
        "error raised by build or fit is recorded as the trial's failure, not retried",
    ),
    "distribution_strategy": (None, "trials run in parallel, one per GPU (gpus, trials_per_gpu)"),
    "max_model_size": (None, "a model too large for the device fails as out of memory"),
    "logger": (None, "progress shows in the notebook; the store keeps every trial"),
    "tuner_id": (None, "several hosts join one study through a shared storage URL"),
}


def _check_keras_tuner_arguments(given: dict[str, Any]) -> None:
    for name, value in given.items():
        if name not in _KERAS_TUNER_ONLY:
            raise UsageError(
                f"Tuner(): unknown argument {name!r}; see help(automl.Tuner) for the arguments."
            )
        default, instead = _KERAS_TUNER_ONLY[name]
        if value is not default and value != default:
            raise UsageError(f"Tuner(): {name}={value!r} is not supported here: {instead}.")


def _options(validation_split: float | None) -> Any:
    from automl.data import DataOptions

    return DataOptions(
        val_split=0.2 if validation_split is None else validation_split, test_split=0.1
    )


def _default_name(hypermodel: Any) -> str:
    name = getattr(hypermodel, "__name__", None) or type(hypermodel).__name__
    return study_name_from(name, "tuner")


def _from_one_hot(y: Any, where: str) -> tuple[Any, int | None]:
    """Class indices of one-hot labels (n, k) and k, as Keras Tuner's getting-started passes
    `keras.utils.to_categorical(y)`; other labels as they are, and None."""
    import numpy as np

    labels = np.asarray(y)
    if labels.ndim != 2 or labels.shape[1] < 2:
        return y, None
    if not (np.isin(labels, (0, 1)).all() and (labels.sum(axis=1) == 1).all()):
        raise DataError(
            f"{where}: labels of shape {labels.shape} that are not one-hot rows; pass integer "
            "class labels (n,) or one-hot rows of 0 and 1."
        )
    return labels.argmax(axis=1), int(labels.shape[1])


def _is_tf_dataset(value: Any) -> bool:
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(value, tf.data.Dataset)
