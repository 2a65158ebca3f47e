"""A worker executor for GPU machines without TensorFlow: `spaces/cnn.py` trained by Keras 3 on
another backend (torch by default, `KERAS_BACKEND` overrides), on in-memory arrays.

The lent GPU machines of our workplace carry PyTorch and JAX but no TensorFlow, and no network
to install it; Keras 3 and the model zoo are backend-neutral, so the same space builds the same
models there. The scheduler, the worker pool, the slot planning and pinning
(`CUDA_VISIBLE_DEVICES` per slot, `--trials-per-gpu`), pruning and the store are the real ones;
only the trial runner differs (NumPy arrays instead of the TensorFlow input pipeline, no
checkpoints). `benchmarks/b4_gpu.py` plugs it in as `executor="benchmarks.keras_backend_executor:
KerasBackendExecutor"`.

Each worker appends one JSON line to `$AUTOML_BENCH_LOG` describing what it sees: its slot, the
pinned `CUDA_VISIBLE_DEVICES`, and the devices the backend found.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from automl.search.messages import TrialRequest
from automl.search.runner import EpochHook, TrialResult
from automl.search.worker import Slot, WorkerSetup
from automl.spaces.hyperparameters import Answers, ParamSpec


def describe_devices() -> dict[str, Any]:
    """The accelerators this process's backend sees (after the slot's pinning)."""
    backend = os.environ.get("KERAS_BACKEND", "torch")
    if backend == "torch":
        import torch

        count = torch.cuda.device_count()
        return {
            "backend": "torch",
            "cuda_devices": count,
            "names": [torch.cuda.get_device_name(i) for i in range(count)],
        }
    if backend == "jax":
        import jax

        return {"backend": "jax", "devices": [str(d) for d in jax.devices()]}
    return {"backend": backend}


class KerasBackendExecutor:
    """Trains `build(hp, info)` models with Keras on the torch (or jax) backend."""

    def __init__(self, setup: WorkerSetup, slot: Slot) -> None:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        import keras  # noqa: F401 - the backend starts here, once per worker

        from automl.data import load_saved_dataset
        from automl.spaces import load_space

        self.space = load_space(setup.space_path)
        self.dataset = load_saved_dataset(setup.dataset_path)
        self.objective = setup.objective
        self.slot = slot
        log = os.environ.get("AUTOML_BENCH_LOG")
        if log:
            seen = {
                "pid": os.getpid(),
                "slot": slot.name,
                "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "threads": slot.threads,
                **describe_devices(),
            }
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(seen) + "\n")

    def _info(self, epochs: int) -> Any:
        from automl.spaces import SpaceInfo

        data = self.dataset
        return SpaceInfo(
            data.input_shape, data.num_classes, data.class_names, len(data.train), epochs
        )

    def preflight(self) -> list[ParamSpec]:
        import keras

        from automl.spaces import HyperParameters, explore_space

        def run(hp: HyperParameters) -> None:
            keras.backend.clear_session()
            self.space.build(hp, self._info(1))

        specs = list(explore_space(run).specs)
        keras.backend.clear_session()
        return specs

    def run(self, request: TrialRequest, answers: Answers, on_epoch: EpochHook) -> TrialResult:
        import gc

        import keras
        import numpy as np

        from automl.search.runner import EpochTracker, failed_result
        from automl.search.training import batch_size_of
        from automl.spaces import HyperParameters
        from automl.storage.attributes import FailureKind

        started = time.perf_counter()
        keras.utils.set_random_seed(request.seed)
        hp = HyperParameters(answers)
        tracker = EpochTracker(self.objective, on_epoch, None)
        train, val = self.dataset.train, self.dataset.val
        model = None
        try:
            model = self.space.build(hp, self._info(request.epochs))
            tracker.params_count = int(model.count_params())
            build = time.perf_counter() - started
            model.fit(
                train.x.astype(np.float32),
                train.y,
                batch_size=batch_size_of(hp),
                epochs=request.epochs,
                validation_data=(val.x.astype(np.float32), val.y),
                callbacks=[tracker.callback()],
                verbose=0,
            )
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            return failed_result(hp, FailureKind.ERROR, reason[:300], started, exc, tracker)
        finally:
            del model
            keras.backend.clear_session()
            gc.collect()
        total = time.perf_counter() - started
        timings = {"build": build, "train": total - build, "total": total}
        return tracker.result(hp.values, {**timings, **tracker.epoch_timings()})
