"""A pretrained backbone made here, for issue 22's transfer-learning space without ImageNet.

`weights="imagenet"` cannot be downloaded on this machine, and no local copy exists, so the
transfer-learning space of the pruning analysis and B2 (`benchmarks/spaces/transfer_local.py`)
uses a backbone pretrained here on the *other* data set: MobileNetV2 (width 0.35) on 32×32
inputs, trained on MNIST-5k for searches on digits and on digits for searches on MNIST-5k. The
trial then does what `spaces/transfer.py` does with ImageNet weights: a new head on the frozen
base, then the top layers unfrozen at a lower learning rate.

    python benchmarks/pretrain_backbone.py --source mnist5k   # for searches on digits
    python benchmarks/pretrain_backbone.py --source digits    # for searches on MNIST-5k

The no-top weights go to `benchmarks/backbones/mobilenetv2_035_32_<source>.weights.h5`
(ignored by git: a few minutes here make them again; the seed fixes the split, not the bits).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import REPO, data_source

BACKBONES = REPO / "benchmarks" / "backbones"
ALPHA = 0.35


def weights_path(source: str, folder: Path = BACKBONES) -> Path:
    """Where the no-top weights pretrained on `source` (digits or mnist5k) are kept."""
    return folder / f"mobilenetv2_035_32_{source}.weights.h5"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["digits", "mnist5k"], required=True)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="train on this many images only (a smoke run)")
    parser.add_argument("--out", type=Path, default=BACKBONES, help="the weights' folder")
    args = parser.parse_args(argv)

    from automl.data import DataOptions, load_dataset
    from automl.tfruntime import import_tensorflow

    import_tensorflow()
    import keras

    from automl.spaces import zoo

    keras.utils.set_random_seed(args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        spec = data_source(args.source, Path(scratch))
        data = load_dataset(spec, DataOptions(seed=args.seed))
    inputs = keras.Input(shape=data.input_shape)
    features, base = zoo.application_backbone(inputs, "mobilenetv2", alpha=ALPHA)
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            # Keras's 0.999 needs thousands of steps for the moving statistics to settle; a
            # few hundred steps on a few thousand images would leave them near their start,
            # and a frozen base (inference mode) would then give the trials noise.
            layer.momentum = 0.9
    outputs = zoo.classifier_head(features, data.num_classes, dropout=0.2)
    model = keras.Model(inputs, outputs)
    zoo.compile_classifier(model, keras.optimizers.Adam(1e-3), num_classes=data.num_classes)
    started = time.perf_counter()
    history = model.fit(
        data.train.x[: args.limit],
        data.train.y[: args.limit],
        validation_data=(data.val.x, data.val.y),
        epochs=args.epochs,
        batch_size=64,
        verbose=2,
    )
    path = weights_path(args.source, args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    base.save_weights(path)
    print(
        f"{args.source}: {args.epochs} epochs in {time.perf_counter() - started:.0f} s, "
        f"best val_accuracy {max(history.history['val_accuracy']):.4f}; "
        f"base input {tuple(base.input.shape[1:])}; weights {path}"
    )
    return path


if __name__ == "__main__":
    main()
