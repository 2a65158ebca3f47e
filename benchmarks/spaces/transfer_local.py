"""Transfer learning with a backbone pretrained here (issue 22's third space for the pruning
analysis and B2): `spaces/transfer.py`'s recipe, a new head on a frozen MobileNetV2 base, then
its top layers unfrozen at a lower learning rate, with weights made on this machine because
ImageNet's cannot be downloaded here.

The base (width 0.35, 32×32 inputs) was pretrained on the other digit data set: on MNIST-5k for
a search on digits (8×8 inputs), on digits for a search on MNIST-5k (28×28, a `.npz` or a folder
of PNGs). Make both weight files first (a few minutes each):

    python benchmarks/pretrain_backbone.py --source mnist5k
    python benchmarks/pretrain_backbone.py --source digits

No augmentation and one backbone: what the analysis measures is how the pruner meets the
frozen-then-fine-tuned curve, not the space's extras.

Try it:  automl search benchmarks/spaces/transfer_local.py --trials 10
"""

from pathlib import Path

import keras

from automl.errors import SpaceError
from automl.spaces import zoo

OBJECTIVE = ("val_accuracy", "maximize")
DATA = "digits"
EPOCHS = 27

BACKBONES = Path(__file__).resolve().parent.parent / "backbones"


def pretrained_weights(input_shape):
    """The weights pretrained on the other data set than the one of this shape."""
    source = "mnist5k" if min(input_shape[:2]) < 16 else "digits"
    path = BACKBONES / f"mobilenetv2_035_32_{source}.weights.h5"
    if not path.is_file():
        raise SpaceError(
            f"{path} does not exist; make it with "
            f"python benchmarks/pretrain_backbone.py --source {source}"
        )
    return str(path)


def build(hp, info):
    inputs = keras.Input(shape=info.input_shape)
    weights = pretrained_weights(info.input_shape)
    x, base = zoo.application_backbone(
        inputs, "mobilenetv2", weights=weights, trainable=False, alpha=0.35
    )
    outputs = zoo.classifier_head(
        x,
        info.num_classes,
        dense_units=hp.Choice("dense_units", [0, 64, 128], default=64),
        dropout=hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.2),
    )
    model = keras.Model(inputs, outputs, name="transfer_mobilenetv2")
    hp.Choice("batch_size", [16, 32, 64], default=32)
    optimizer = zoo.make_optimizer(
        hp.Choice("optimizer", ["adam", "sgd"], default="adam"),
        hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3),
    )
    zoo.compile_classifier(model, optimizer, num_classes=info.num_classes)

    fine_tune = hp.Boolean("fine_tune", default=True)
    with hp.conditional_scope("fine_tune", [True]):
        if fine_tune:
            return zoo.fine_tune(
                model,
                base,
                layers=hp.Int("fine_tune_layers", 10, 50, step=10, default=20),
                at_fraction=hp.Float("frozen_fraction", 0.25, 0.75, step=0.25, default=0.5),
                learning_rate_factor=hp.Float(
                    "fine_tune_lr_factor", 0.01, 0.3, sampling="log", default=0.1
                ),
            )
    return model
