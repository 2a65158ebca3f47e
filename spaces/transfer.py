"""Transfer learning: a pretrained `keras.applications` backbone, frozen first, then fine-tuned.

Each trial trains the new head on the frozen base for part of its epochs, then unfreezes the
top `fine_tune_layers` layers of the base and continues at a lower learning rate — two phases
sharing the trial's epoch budget (the runner recompiles between them).

Weights: "imagenet" downloads once into the Keras cache (~/.keras/models) where a network
exists; offline, place the backbone's `*_no_top.h5` file there, or set WEIGHTS to the path of a
local no-top weights file.

Try it:  automl check spaces/transfer.py   then   automl search spaces/transfer.py --data images/
"""

import keras

from automl.spaces import zoo

OBJECTIVE = ("val_accuracy", "maximize")
DATA = "digits"
EPOCHS = 6

WEIGHTS = "imagenet"
BACKBONES = ["mobilenetv2", "efficientnetb0", "resnet50", "vgg16"]


def build(hp, info):
    backbone = hp.Choice("backbone", BACKBONES, default="mobilenetv2")

    inputs = keras.Input(shape=info.input_shape)
    x = inputs
    augment = hp.Boolean("augment", default=True)
    with hp.conditional_scope("augment", [True]):
        if augment:
            x = zoo.augmentation(
                x,
                flip=hp.Choice("flip", ["none", "horizontal"], default="none"),
                rotation=hp.Float("rotation", 0.0, 0.1, step=0.05, default=0.05),
                zoom=hp.Float("zoom", 0.0, 0.2, step=0.1, default=0.1),
            )
    x, base = zoo.application_backbone(x, backbone, weights=WEIGHTS, trainable=False)
    outputs = zoo.classifier_head(
        x,
        info.num_classes,
        dense_units=hp.Choice("dense_units", [0, 128, 256], default=128),
        dropout=hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.2),
    )
    model = keras.Model(inputs, outputs, name=f"transfer_{backbone}")
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
