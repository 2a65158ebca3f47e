"""B8, one process: what the cached-image pipeline costs a worker, without a second worker.

B8's arms run two processes on two cores at once, so their epoch times move with how the two
overlap. This runs one worker's share alone (one intra-op thread, as a CPU worker of two gets):
an epoch of B8's fixed model fed by automl's pipeline from the image cache, against the same
model on one in-memory batch repeated (the compute-only bound), and the pipeline alone (no
model), with its CPU time.

    python benchmarks/b8_image_folders.py --generate-only --images 4000
    python benchmarks/b8_pipeline_alone.py --folder /tmp/automl-b8/photos-4000 --epochs 3
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.b8_image_folders import BATCH, SPACE_SOURCE  # noqa: E402
from benchmarks.common import median, write_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/automl-b8/photos-4000"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["AUTOML_CACHE"] = cache
        run(args)


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from automl.data import load_dataset
    from automl.data.pipeline import make_pipeline
    from automl.tfruntime import import_tensorflow

    tf = import_tensorflow(threads=1)
    started = time.perf_counter()
    data = load_dataset(str(args.folder))
    cache_s = time.perf_counter() - started
    space = Path(tempfile.mkdtemp()) / "b8_cnn.py"
    space.write_text(SPACE_SOURCE)
    spec = importlib.util.spec_from_file_location("b8_cnn", space)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    steps = len(data.train) // BATCH

    def pipeline() -> object:
        return make_pipeline(data.train, batch_size=BATCH, training=True)

    figures: dict[str, list[float]] = {"pipeline_alone_s": [], "pipeline_alone_cpu_s": []}
    for _ in range(args.epochs):
        wall, cpu = time.perf_counter(), time.process_time()
        for _batch in pipeline():  # type: ignore[attr-defined]
            pass
        figures["pipeline_alone_s"].append(time.perf_counter() - wall)
        figures["pipeline_alone_cpu_s"].append(time.process_time() - cpu)
    x = np.asarray(data.train.x[:BATCH], dtype=np.float32)
    y = data.train.y[:BATCH].astype("int32")
    feeds = {
        "automl": lambda: pipeline(),
        "bound": lambda: tf.data.Dataset.from_tensors((x, y)).repeat(),
    }
    for arm, feed in feeds.items():
        model = module.build_model(data.input_shape, data.num_classes)
        dataset = feed()
        times = []
        for _ in range(args.epochs):
            wall = time.perf_counter()
            model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
            times.append(time.perf_counter() - wall)
        figures[f"{arm}_epoch_s"] = times
    automl, bound = median(figures["automl_epoch_s"][1:]), median(figures["bound_epoch_s"][1:])
    print(f"cache built in {cache_s:.1f} s; {len(data.train):,} training images, {steps} steps")
    print(
        f"pipeline alone: {median(figures['pipeline_alone_s'][1:]):.2f} s/epoch, CPU "
        f"{median(figures['pipeline_alone_cpu_s'][1:]):.2f} s"
    )
    print(
        f"epoch (after the first): automl {automl:.2f} s, bound {bound:.2f} s: "
        f"{bound / automl:.2f}× the bound"
    )
    write_result(
        "b8_pipeline_alone",
        {
            "folder": str(args.folder),
            "images": sum(data.sizes().values()),
            "steps": steps,
            "cache_build_s": cache_s,
            **figures,
            "throughput_vs_bound": bound / automl,
        },
    )


if __name__ == "__main__":
    main()
