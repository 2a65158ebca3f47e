"""The flagship search space: a small image classifier for any `automl` data source.

`build(hp, info)` is ordinary Keras code; every `hp.*` call is a choice the search makes.
Parameters that only matter for one backbone sit under `hp.conditional_scope`, so the search
(and `automl check`) knows when they apply.

Try it:  automl check spaces/cnn.py   then   automl search spaces/cnn.py --trials 30
"""

import keras

from automl.spaces import zoo

OBJECTIVE = ("val_accuracy", "maximize")
DATA = "digits"
EPOCHS = 9


def build(hp, info):
    backbone = hp.Choice("backbone", ["conv", "resnet"], default="conv")
    l2 = hp.Float("l2", 1e-6, 1e-2, sampling="log", default=1e-4)

    inputs = keras.Input(shape=info.input_shape)
    x = zoo.rescale(inputs)

    with hp.conditional_scope("backbone", ["conv"]):
        if backbone == "conv":
            x = zoo.conv_stack(
                x,
                depth=hp.Int("depth", 1, 4, default=2),
                filters=hp.Choice("filters", [16, 32, 64], default=32),
                kernel_size=hp.Choice("kernel_size", [3, 5], default=3),
                double_filters=hp.Boolean("double_filters", default=True),
                l2=l2,
            )

    with hp.conditional_scope("backbone", ["resnet"]):
        if backbone == "resnet":
            x = zoo.small_resnet(
                x,
                stages=hp.Int("stages", 1, 3, default=2),
                blocks_per_stage=hp.Int("blocks_per_stage", 1, 2, default=1),
                filters=hp.Choice("resnet_filters", [16, 32], default=16),
                l2=l2,
            )

    outputs = zoo.classifier_head(
        x,
        info.num_classes,
        dense_units=hp.Choice("dense_units", [0, 64, 128], default=64),
        dropout=hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.2),
        l2=l2,
    )
    model = keras.Model(inputs, outputs, name=f"cnn_{backbone}")

    optimizer = zoo.make_optimizer(
        hp.Choice("optimizer", ["adam", "adamw", "sgd", "rmsprop"], default="adam"),
        hp.Float("learning_rate", 1e-4, 1e-1, sampling="log", default=3e-3),
    )
    # A parameter named batch_size sets the batch size of the input pipeline.
    hp.Choice("batch_size", [16, 32, 64], default=32)
    return zoo.compile_classifier(model, optimizer, num_classes=info.num_classes)
