"""B4 on a GPU machine — trials per GPU (K = 1, 2, 4 workers pinned to each GPU) and, where
there are several GPUs, 1 GPU vs all of them, on the same budget.

GPU discovery (`nvidia-smi`), slot planning, per-worker pinning (`CUDA_VISIBLE_DEVICES`), the
scheduler, pruning and the store are the real ones. With `--backend tensorflow` the trials run
through our trial runner as in any search; with `torch` (or `jax`) they train `spaces/cnn.py`
through `keras_backend_executor` (Keras 3 on that backend): the lent GPU machines of our
workplace have no TensorFlow and no network to install it. Same random-sampler seed in every
arm (so the same configurations), no pruning, a fixed epoch count. Reports trials per hour, the
speed-up over K = 1, worker and GPU utilisation (`nvidia-smi` sampled every 0.5 s) and what each
worker saw.

    python benchmarks/b4_gpu.py [--trials 24] [--epochs 4] [--per-gpu 1,2,4] [--data PATH.npz]
        [--backend tensorflow|torch|jax]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import median, mnist_5k_npz, search_cnn, table, write_result

EXECUTOR = "benchmarks.keras_backend_executor:KerasBackendExecutor"


class GpuSampler:
    """Samples GPU utilisation and memory with `nvidia-smi -lms` while a run goes on."""

    def __init__(self, interval_ms: int = 500) -> None:
        self.samples: list[tuple[float, float]] = []
        self._process = subprocess.Popen(
            [
                "nvidia-smi",
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
                f"-lms={interval_ms}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and all(p.replace(".", "").isdigit() for p in parts):
                self.samples.append((float(parts[0]), float(parts[1])))

    def stop(self) -> dict[str, float]:
        self._process.terminate()
        self._process.wait()
        self._thread.join(timeout=5)
        if not self.samples:
            return {}
        return {
            "gpu_utilisation_mean": sum(s[0] for s in self.samples) / len(self.samples),
            "gpu_utilisation_median": median([s[0] for s in self.samples]),
            "gpu_memory_max_mib": max(s[1] for s in self.samples),
        }


def run(
    data: str, gpus: list[int] | None, per_gpu: int, trials: int, epochs: int, executor: str
) -> dict[str, Any]:
    from automl.search.devices import discover_gpus

    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "workers.jsonl"
        os.environ["AUTOML_BENCH_LOG"] = str(log)
        sampler = GpuSampler()
        try:
            summary, seconds = search_cnn(
                gpu_probe=discover_gpus,
                trials=trials,
                data=data,
                epochs=epochs,
                gpus=gpus,
                trials_per_gpu=per_gpu,
                sampler="random",
                pruner="none",
                patience=None,
                seed=0,
                study=f"k{per_gpu}",
                executor=executor,
            )
        finally:
            gpu = sampler.stop()
        seen = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    record = summary.record
    complete = [t for t in record.trials if t.state.value == "complete"]
    return {
        "gpus": gpus,
        "per_gpu": per_gpu,
        "workers": len(summary.utilisation),
        "seconds": seconds,
        "trials_per_hour": trials / seconds * 3600,
        "utilisation": summary.utilisation,
        "best": record.best().value if record.best() else None,
        "complete": len(complete),
        "failed": sum(1 for t in record.trials if t.state.value == "fail"),
        "workers_saw": seen,
        **gpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--per-gpu", default="1,2,4", help="trials per GPU to compare")
    parser.add_argument("--data", default="mnist5k", help="mnist5k (bench extra) or a .npz path")
    parser.add_argument(
        "--backend",
        default=os.environ.get("KERAS_BACKEND", "torch"),
        choices=("tensorflow", "torch", "jax"),
        help="tensorflow: our trial runner; torch or jax: keras_backend_executor",
    )
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.backend  # the spawned workers inherit it
    executor = "keras" if args.backend == "tensorflow" else EXECUTOR
    from automl.search.devices import discover_gpus

    visible = discover_gpus()
    if not visible:
        raise SystemExit("b4_gpu needs a visible GPU (nvidia-smi found none)")
    print("visible GPUs:", ", ".join(f"{g.index}: {g.name} ({g.memory_mib} MiB)" for g in visible))
    with tempfile.TemporaryDirectory() as scratch:
        data = str(
            mnist_5k_npz(Path(scratch)) if args.data == "mnist5k" else Path(args.data).resolve()
        )
        arms: list[tuple[list[int] | None, int]] = [
            ([visible[0].index], int(k)) for k in args.per_gpu.split(",")
        ]
        if len(visible) > 1:
            arms.append((None, 1))  # every GPU, one trial each
        results = []
        for gpus, per_gpu in arms:
            result = run(data, gpus, per_gpu, args.trials, args.epochs, executor)
            results.append(result)
            print(
                f"GPUs {gpus or 'all'} x {per_gpu} per GPU: {result['seconds']:.0f} s, "
                f"{result['trials_per_hour']:.0f} trials/hour, GPU utilisation "
                f"{result.get('gpu_utilisation_mean', float('nan')):.0f} %, "
                f"{result['complete']} complete / {result['failed']} failed",
                flush=True,
            )
    base = results[0]["trials_per_hour"]
    rows = [
        [
            ",".join(map(str, r["gpus"])) if r["gpus"] else "all",
            r["per_gpu"],
            f"{r['seconds']:.0f}",
            f"{r['trials_per_hour']:.0f}",
            f"{r['trials_per_hour'] / base:.2f}",
            f"{r.get('gpu_utilisation_mean', float('nan')):.0f} %",
            f"{r.get('gpu_memory_max_mib', float('nan')):.0f}",
            ", ".join(f"{v:.0%}" for v in r["utilisation"].values()),
            f"{r['best']:.4f}" if r["best"] is not None else "-",
        ]
        for r in results
    ]
    print(
        table(
            rows,
            [
                "GPUs",
                "per GPU",
                "wall s",
                "trials/hour",
                "vs 1 per GPU",
                "GPU util",
                "GPU MiB",
                "worker util",
                "best",
            ],
        )
    )
    for r in results:
        for seen in r["workers_saw"]:
            print(f"K={r['per_gpu']} worker saw: {json.dumps(seen)}")
    write_result(
        "b4_gpu",
        {
            "trials": args.trials,
            "epochs": args.epochs,
            "data": args.data,
            "backend": args.backend,
            "visible": [g.__dict__ for g in visible],
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
