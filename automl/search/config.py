"""The settings of one search: every flag of `automl search`, as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass, field

from automl.data import DataOptions
from automl.storage.attributes import SearchSettings


@dataclass(frozen=True)
class SearchConfig:
    """Every setting of `automl search` (each CLI flag matches a field).

    Attributes:
        space: the space file.
        trials: the study's target of finished (complete + pruned) trials.
        study: study name; None for the space file's stem.
        storage: storage URL; None for `$AUTOML_STORAGE` or `runs/automl.db`.
        data: data source; None for the space's DATA, else digits.
        data_options: splits, bad-image handling.
        epochs: maximum epochs per trial; None for the space's EPOCHS, else 10.
        workers: CPU workers (no GPU); None for one per core, up to 8.
        gpus: GPU indices to use; None for every visible GPU.
        trials_per_gpu: trials packed on each GPU.
        sampler: `tpe`, `random`, `gp`, `cmaes`, `grid` or `qmc`.
        pruner: `hyperband`, `sha`, `median`, `percentile`, `patient` or `none`.
        min_epochs: the epoch of successive halving's and Hyperband's first rung; None for the
            study's stored value when it resumes (1 for a study that stored none), else
            `engines.DEFAULT_MIN_EPOCHS` (1).
        timeout: seconds after which no new trial starts; None for none.
        seed: seed of the sampler and of each trial (`trial_seed`).
        objective: overrides the space's OBJECTIVE (`metric[:direction]`).
        max_failures: consecutive failed trials that stop the search.
        trial_timeout: seconds after which a running trial fails as timed out; None for 10x
            the slowest epoch measured x the epochs, at least 5 minutes.
        worker_start_timeout: seconds a worker may take to start (import, data, preflight).
        precision: `auto` (mixed float16 on GPUs with tensor cores, else float32), `float32`
            or `mixed`.
        jit: compile every model's training step with XLA.
        allow_space_change: resume even if the space file or data changed.
        keep_checkpoints: best-epoch checkpoints kept (of the best complete trials).
        patience: early-stopping patience in epochs; None for none (the default: see
            `runner.DEFAULT_PATIENCE`).
        recycle_after: trials after which a worker is replaced (memory hygiene).
        recycle_memory_mib: resident-memory growth after which a worker is replaced.
        executor: `keras`, or `module:factory` for benchmarks.
        heartbeat: seconds between heartbeats of running trials; a trial without one for 3
            intervals is failed and re-queued by any host of the study.
        role: `search`, or `worker` (joins an existing study, never creates one).
        tensorboard: a folder for TensorBoard logs (scalars and HParams of every trial), or
            None.
        repeats: models trained per configuration with different seeds; the objective (and
            pruning) follow their mean curve (Keras Tuner's `executions_per_trial`).
        deterministic: TensorFlow op determinism with each worker's thread count fixed, so
            that `automl trial --replay` reproduces a trial's stored curve exactly (on CPU).
    """

    space: str
    trials: int
    study: str | None = None
    storage: str | None = field(default=None, repr=False)  # may hold a password
    data: str | None = None
    data_options: DataOptions = field(default_factory=DataOptions)
    epochs: int | None = None
    workers: int | None = None
    gpus: tuple[int, ...] | None = None
    trials_per_gpu: int = 1
    sampler: str = "tpe"
    pruner: str = "sha"
    min_epochs: int | None = None
    timeout: float | None = None
    seed: int = 0
    objective: str | None = None
    max_failures: int = 5
    trial_timeout: float | None = None
    worker_start_timeout: float = 600.0
    precision: str = "auto"
    jit: bool = False
    allow_space_change: bool = False
    keep_checkpoints: int = 3
    patience: int | None = None
    recycle_after: int = 100
    recycle_memory_mib: float = 1024.0
    executor: str = "keras"
    heartbeat: int = 10
    role: str = "search"
    tensorboard: str | None = None
    repeats: int = 1
    deterministic: bool = False

    def settings(self, *, epochs: int, min_epochs: int | None = None) -> SearchSettings:
        """The settings stored with the study, with the epoch budget and first rung used."""
        return SearchSettings(
            trials=self.trials,
            epochs=epochs,
            min_epochs=min_epochs,
            workers=self.workers,
            gpus=self.gpus,
            trials_per_gpu=self.trials_per_gpu,
            sampler=self.sampler,
            pruner=self.pruner,
            timeout=self.timeout,
            seed=self.seed,
            objective=self.objective,
            max_failures=self.max_failures,
            keep_checkpoints=self.keep_checkpoints,
            patience=self.patience,
            data_options=self.data_options.to_dict(),
            precision=self.precision,
            jit=self.jit,
            deterministic=self.deterministic,
            repeats=self.repeats,
        )
