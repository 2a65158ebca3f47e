"""The flagship search space: an image classifier for any `automl` data source.

`build(hp, info)` is ordinary Keras code; every `hp.*` call is a choice the search makes.
Parameters that only matter for one backbone sit under `hp.conditional_scope`, so the search
(and `automl check`) knows when they apply.

Backbones: a plain conv stack and a small ResNet always; the `keras.applications` backbones
(MobileNetV2, EfficientNetB0, ResNet50, VGG16) for images of at least 32 px — their minimum;
on smaller images such as the 8×8 `digits` they would only see upsampled blur. Set PRETRAINED
to "imagenet" (or a weights file) to start them from pretrained weights and search how many top
layers to fine-tune.

Try it:  automl check spaces/cnn.py   then   automl search spaces/cnn.py --trials 30
"""

import keras

from automl.spaces import zoo

OBJECTIVE = ("val_accuracy", "maximize")
DATA = "digits"
EPOCHS = 9

PRETRAINED = None  # None, "imagenet" or a path to a no-top weights file
APPLICATIONS = ["mobilenetv2", "efficientnetb0", "resnet50", "vgg16"]


def build(hp, info):
    backbones = ["conv", "resnet"]
    if min(info.input_shape[:2]) >= 32:
        backbones += APPLICATIONS
    backbone = hp.Choice("backbone", backbones, default="conv")
    l2 = hp.Float("l2", 1e-6, 1e-2, sampling="log", default=1e-4)

    inputs = keras.Input(shape=info.input_shape)
    x = inputs
    augment = hp.Boolean("augment", default=False)
    with hp.conditional_scope("augment", [True]):
        if augment:
            x = zoo.augmentation(
                x,
                flip=hp.Choice("flip", ["none", "horizontal"], default="none"),
                rotation=hp.Float("rotation", 0.0, 0.15, step=0.05, default=0.05),
                translation=hp.Float("translation", 0.0, 0.15, step=0.05, default=0.05),
                zoom=hp.Float("zoom", 0.0, 0.2, step=0.1, default=0.1),
                contrast=hp.Float("contrast", 0.0, 0.3, step=0.1, default=0.0),
            )

    with hp.conditional_scope("backbone", ["conv"]):
        if backbone == "conv":
            x = zoo.conv_stack(
                zoo.rescale(x),
                depth=hp.Int("depth", 1, 4, default=2),
                filters=hp.Choice("filters", [16, 32, 64], default=32),
                kernel_size=hp.Choice("kernel_size", [3, 5], default=3),
                double_filters=hp.Boolean("double_filters", default=True),
                l2=l2,
            )

    with hp.conditional_scope("backbone", ["resnet"]):
        if backbone == "resnet":
            x = zoo.small_resnet(
                zoo.rescale(x),
                stages=hp.Int("stages", 1, 3, default=2),
                blocks_per_stage=hp.Int("blocks_per_stage", 1, 2, default=1),
                filters=hp.Choice("resnet_filters", [16, 32], default=16),
                l2=l2,
            )

    base = None
    # Scopes on the same parent are not nested: Keras Tuner refuses that, and this file runs
    # unchanged under Keras Tuner too.
    alpha = None
    with hp.conditional_scope("backbone", ["mobilenetv2"]):
        if backbone == "mobilenetv2":
            alpha = hp.Choice("mobilenet_alpha", [0.35, 0.5, 1.0], default=0.35)
    with hp.conditional_scope("backbone", APPLICATIONS):
        if backbone in APPLICATIONS:
            x, base = zoo.application_backbone(
                x,
                backbone,
                weights=PRETRAINED,
                trainable=PRETRAINED is None,
                alpha=alpha or 1.0,
            )

    outputs = zoo.classifier_head(
        x,
        info.num_classes,
        dense_units=hp.Choice("dense_units", [0, 64, 128], default=64),
        dropout=hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.2),
        l2=l2,
    )
    model = keras.Model(inputs, outputs, name=f"cnn_{backbone}")

    batch_size = hp.Choice("batch_size", [16, 32, 64], default=32)  # sets the pipeline's batch
    schedule = hp.Choice("schedule", ["constant", "cosine", "plateau"], default="constant")
    learning_rate = zoo.learning_rate_schedule(
        schedule,
        hp.Float("learning_rate", 1e-4, 1e-1, sampling="log", default=3e-3),
        epochs=info.epochs,
        steps_per_epoch=info.steps_per_epoch(batch_size),
    )
    optimizer = zoo.make_optimizer(
        hp.Choice("optimizer", ["adam", "adamw", "sgd", "rmsprop"], default="adam"),
        learning_rate,
    )
    zoo.compile_classifier(model, optimizer, num_classes=info.num_classes)
    # A plain model, or a training plan of it when it needs a callback or a fine-tuning phase.
    plan = model
    if schedule == "plateau":
        plan = zoo.reduce_on_plateau(plan)
    if base is not None and PRETRAINED is not None:
        with hp.conditional_scope("backbone", APPLICATIONS):
            plan = zoo.fine_tune(plan, base, layers=hp.Int("fine_tune_layers", 0, 60, step=20))
    return plan
