"""B6 — fixed cost per trial in a warm worker: build + compile + the first training step.

A warm worker has imported TensorFlow once (timed separately: it is paid once per worker, not
per trial) and already run a trial. Each repetition then builds the default `spaces/cnn.py`
model (build + compile), runs its first training step (which traces the train function), and
the first full epoch through the runner's pipeline. Medians over the repetitions.

    python benchmarks/b6_trial_fixed_cost.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import REPO, median, table, write_result


def import_seconds() -> float:
    code = (
        "import time; t = time.perf_counter(); import tensorflow, keras; "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    imports = [import_seconds() for _ in range(3)]

    from automl.tfruntime import import_tensorflow

    import_tensorflow()
    import keras

    from automl.data import load_dataset
    from automl.data.pipeline import make_pipeline
    from automl.search.training import batch_size_of, run_epochs_in_one_call
    from automl.spaces import HyperParameters, SpaceInfo, load_space

    space = load_space(REPO / "spaces" / "cnn.py")
    data = load_dataset("digits")
    info = SpaceInfo(data.input_shape, data.num_classes, data.class_names, len(data.train), 9)
    x, y = data.train.x[:32].astype("float32"), data.train.y[:32]
    build, first_step, first_epoch, later_epoch = [], [], [], []
    for repeat in range(args.repeats + 1):
        keras.backend.clear_session()
        started = time.perf_counter()
        hp = HyperParameters()
        model = space.build(hp, info)
        built = time.perf_counter()
        model.train_on_batch(x, y)
        stepped = time.perf_counter()
        keras.backend.clear_session()
        model = space.build(HyperParameters(), info)
        train = make_pipeline(data.train, batch_size=batch_size_of(hp), training=True)
        val = make_pipeline(data.val, batch_size=256, training=False)
        run_epochs_in_one_call(model, steps=-(-len(data.train) // batch_size_of(hp)))
        t0 = time.perf_counter()
        model.fit(train, validation_data=val, epochs=1, verbose=0)
        t1 = time.perf_counter()
        model.fit(train, validation_data=val, epochs=2, initial_epoch=1, verbose=0)
        t2 = time.perf_counter()
        if repeat == 0:
            continue  # the worker's first trial warms it up
        build.append(built - started)
        first_step.append(stepped - built)
        first_epoch.append(t1 - t0)
        later_epoch.append(t2 - t1)
        print(
            f"repeat {repeat}: build+compile {build[-1]:.2f} s, first step {first_step[-1]:.2f} s,"
            f" first epoch {first_epoch[-1]:.2f} s, next epoch {later_epoch[-1]:.2f} s",
            flush=True,
        )
    fixed = median([b + s for b, s in zip(build, first_step, strict=True)])
    rows = [
        ["import tensorflow + keras (once per worker)", f"{median(imports):.2f}"],
        ["build + compile", f"{median(build):.3f}"],
        ["first training step (traces the train function)", f"{median(first_step):.3f}"],
        ["fixed cost per trial = build + compile + first step", f"{fixed:.3f}"],
        [
            "first epoch through the pipeline (incl. tracing train + val)",
            f"{median(first_epoch):.3f}",
        ],
        ["a later epoch", f"{median(later_epoch):.3f}"],
    ]
    print(table(rows, ["B6 (default cnn.py on digits, warm worker)", "median seconds"]))
    print(f"fixed cost per trial {fixed:.2f} s (target <= 1.0 s)")
    write_result(
        "b6_trial_fixed_cost",
        {
            "repeats": args.repeats,
            "import_s": imports,
            "build_s": build,
            "first_step_s": first_step,
            "first_epoch_s": first_epoch,
            "later_epoch_s": later_epoch,
            "fixed_cost_median_s": fixed,
        },
    )


if __name__ == "__main__":
    main()
