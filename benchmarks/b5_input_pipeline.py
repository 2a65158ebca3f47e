"""B5 — input pipeline: our tf.data pipeline vs `model.fit` on in-memory arrays vs the
compute-only bound (one cached batch repeated, so no input work at all).

Same model (the default `spaces/cnn.py` model), batch size and steps per epoch on each side;
sides alternate within one process; steady-state epochs (the first, which traces, is dropped).

    python benchmarks/b5_input_pipeline.py [--data digits|mnist5k] [--epochs 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import REPO, data_source, median, table, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", choices=("digits", "mnist5k"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from automl.tfruntime import import_tensorflow

    tf = import_tensorflow()
    import keras

    from automl.data import load_dataset
    from automl.data.pipeline import make_pipeline, prepare_images
    from automl.search.training import run_epochs_in_one_call
    from automl.spaces import HyperParameters, SpaceInfo, load_space

    with tempfile.TemporaryDirectory() as folder:
        source = data_source(args.data, Path(folder))
        data = load_dataset(source)
    space = load_space(REPO / "spaces" / "cnn.py")
    info = SpaceInfo(data.input_shape, data.num_classes, data.class_names, len(data.train), 9)
    batch = 32
    steps = -(-len(data.train) // batch)
    x = prepare_images(data.train.x, None)
    y = data.train.y.astype("int32")

    def ours() -> object:
        return make_pipeline(data.train, batch_size=batch, training=True, seed=0)

    def bound() -> object:
        one = tf.data.Dataset.from_tensors((x[:batch], y[:batch])).cache()
        return one.repeat(steps).prefetch(tf.data.AUTOTUNE)

    sides = {
        "automl pipeline": lambda model: model.fit(ours(), epochs=1, verbose=0, shuffle=False),
        "model.fit on arrays": lambda model: model.fit(
            x, y, batch_size=batch, epochs=1, verbose=0, shuffle=True
        ),
        "compute-only bound": lambda model: model.fit(bound(), epochs=1, verbose=0, shuffle=False),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(args.rounds):
        for name, fit in sides.items():
            keras.backend.clear_session()
            keras.utils.set_random_seed(round_)
            model = space.build(HyperParameters(), info)
            run_epochs_in_one_call(model, steps=steps)
            fit(model)  # traces
            for _ in range(args.epochs):
                started = time.perf_counter()
                fit(model)
                times[name].append(time.perf_counter() - started)
        print(
            f"round {round_ + 1}: " + ", ".join(f"{n} {median(t):.3f} s" for n, t in times.items()),
            flush=True,
        )
    bound_time = median(times["compute-only bound"])
    rows = [
        [name, f"{median(t):.3f}", f"{bound_time / median(t):.2f}"] for name, t in times.items()
    ]
    print(
        table(
            rows,
            [
                f"B5 ({args.data}, {steps} steps of {batch})",
                "median s/epoch",
                "× compute-only bound",
            ],
        )
    )
    ratio = bound_time / median(times["automl pipeline"])
    print(f"automl pipeline throughput = {ratio:.2f} × the compute-only bound (target >= 0.9)")
    write_result(
        f"b5_input_pipeline_{args.data}",
        {
            "data": args.data,
            "batch_size": batch,
            "steps": steps,
            "seconds": times,
            "ratio_to_bound": ratio,
        },
    )


if __name__ == "__main__":
    main()
