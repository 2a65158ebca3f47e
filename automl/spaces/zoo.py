"""The model zoo: building blocks that search spaces compose.

Blocks take plain values (never `hp`), so a space reads like ordinary Keras code and the same
block serves every space. Every model takes float32 pixels in [0, 255] (what the data pipeline
and `automl predict` feed), and scales them itself: the scaling is part of the saved model.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import layers, regularizers

from automl.errors import SpaceError, one_line

Tensor = Any
# Keras' default of 0.99 leaves the moving statistics far from the data after the few hundred
# steps of a short trial, so validation accuracy lags badly; 0.9 settles within an epoch.
_BN_MOMENTUM = 0.9


def rescale(x: Tensor) -> Tensor:
    """Scale [0, 255] pixels to [0, 1]."""
    return layers.Rescaling(1.0 / 255.0, name="rescale")(x)


def conv_stack(
    x: Tensor,
    *,
    depth: int = 2,
    filters: int = 32,
    kernel_size: int = 3,
    double_filters: bool = True,
    l2: float = 0.0,
    dropout: float = 0.0,
    pool: bool = True,
    name: str = "conv",
) -> Tensor:
    """`depth` blocks of Conv2D – BatchNorm – ReLU (– MaxPool – Dropout).

    Args:
        x: the input tensor (batch, height, width, channels).
        depth: number of blocks. Defaults to `2`.
        filters: filters of the first block. Defaults to `32`.
        kernel_size: square kernel size. Defaults to `3`.
        double_filters: double the filters at each block (else keep them fixed).
            Defaults to `True`.
        l2: L2 penalty on the kernels; 0 for none. Defaults to `0.0`.
        dropout: dropout rate after each pooling; 0 for none. Defaults to `0.0`.
        pool: 2×2 max pooling after each block while the feature map is larger than 1×1.
            Defaults to `True`.
        name: prefix of the layer names. Defaults to `"conv"`.
    """
    for block in range(depth):
        width = filters * (2**block if double_filters else 1)
        x = layers.Conv2D(
            width,
            kernel_size,
            padding="same",
            use_bias=False,
            kernel_regularizer=_l2(l2),
            name=f"{name}{block + 1}",
        )(x)
        x = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}{block + 1}_bn")(x)
        x = layers.ReLU(name=f"{name}{block + 1}_relu")(x)
        if pool and min(x.shape[1], x.shape[2]) >= 2:
            x = layers.MaxPooling2D(2, name=f"{name}{block + 1}_pool")(x)
            if dropout > 0:
                x = layers.Dropout(dropout, name=f"{name}{block + 1}_dropout")(x)
    return x


def small_resnet(
    x: Tensor,
    *,
    stages: int = 2,
    blocks_per_stage: int = 1,
    filters: int = 16,
    l2: float = 0.0,
    name: str = "resnet",
) -> Tensor:
    """A small ResNet: a 3×3 stem, then `stages` stages of basic residual blocks.

    Each stage after the first halves the feature map (while it is larger than 1×1) and doubles
    the filters.

    Args:
        x: the input tensor.
        stages: number of stages. Defaults to `2`.
        blocks_per_stage: residual blocks per stage. Defaults to `1`.
        filters: filters of the stem and the first stage. Defaults to `16`.
        l2: L2 penalty on the kernels. Defaults to `0.0`.
        name: prefix of the layer names. Defaults to `"resnet"`.
    """
    x = layers.Conv2D(
        filters, 3, padding="same", use_bias=False, kernel_regularizer=_l2(l2), name=f"{name}_stem"
    )(x)
    x = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_stem_bn")(x)
    x = layers.ReLU(name=f"{name}_stem_relu")(x)
    for stage in range(stages):
        width = filters * 2**stage
        for block in range(blocks_per_stage):
            downsample = block == 0 and stage > 0 and min(x.shape[1], x.shape[2]) >= 2
            x = _residual_block(
                x,
                width,
                stride=2 if downsample else 1,
                l2=l2,
                name=f"{name}_s{stage + 1}b{block + 1}",
            )
    return x


def _residual_block(x: Tensor, width: int, *, stride: int, l2: float, name: str) -> Tensor:
    shortcut = x
    y = layers.Conv2D(
        width,
        3,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_regularizer=_l2(l2),
        name=f"{name}_conv1",
    )(x)
    y = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(
        width, 3, padding="same", use_bias=False, kernel_regularizer=_l2(l2), name=f"{name}_conv2"
    )(y)
    y = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != width:
        shortcut = layers.Conv2D(
            width,
            1,
            strides=stride,
            use_bias=False,
            kernel_regularizer=_l2(l2),
            name=f"{name}_proj",
        )(shortcut)
        shortcut = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_proj_bn")(
            shortcut
        )
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def classifier_head(
    x: Tensor,
    num_classes: int,
    *,
    dense_units: int = 0,
    dropout: float = 0.0,
    l2: float = 0.0,
    name: str = "head",
) -> Tensor:
    """Global average pooling, an optional dense layer, dropout and a softmax.

    Args:
        x: a feature map (batch, height, width, channels) or features (batch, units).
        num_classes: number of classes.
        dense_units: width of a hidden dense layer; 0 for none. Defaults to `0`.
        dropout: dropout rate before the output layer. Defaults to `0.0`.
        l2: L2 penalty on the dense kernels. Defaults to `0.0`.
        name: prefix of the layer names. Defaults to `"head"`.
    """
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    if dense_units:
        x = layers.Dense(
            dense_units, activation="relu", kernel_regularizer=_l2(l2), name=f"{name}_dense"
        )(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    # float32 output keeps the softmax stable under a mixed-precision policy.
    return layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=_l2(l2),
        dtype="float32",
        name=f"{name}_out",
    )(x)


OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


def make_optimizer(
    name: str,
    learning_rate: Any,
    *,
    weight_decay: float = 1e-4,
    momentum: float = 0.9,
) -> keras.optimizers.Optimizer:
    """A Keras optimizer by name.

    Args:
        name: one of `adam`, `adamw`, `sgd` (with momentum, Nesterov), `rmsprop`.
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`.
        weight_decay: decoupled weight decay of `adamw`. Defaults to `1e-4`.
        momentum: momentum of `sgd` and `rmsprop`. Defaults to `0.9`.
    """
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=True)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}.")


def compile_classifier(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    *,
    num_classes: int,
    top5: bool = False,
) -> keras.Model:
    """Compile for integer labels with accuracy.

    Args:
        model: the model.
        optimizer: its optimizer.
        num_classes: number of classes.
        top5: also track top-5 accuracy (above 5 classes). Defaults to `False`: every metric
            adds to the graph each trial traces; test top-5 accuracy is computed after
            retraining anyway.
    """
    metrics: list[Any] = ["accuracy"]
    if top5 and num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=metrics)
    return model


# -- keras.applications backbones -----------------------------------------------------------------


@dataclass(frozen=True)
class _Application:
    constructor: str
    preprocessing: str  # "tf": [-1, 1]; "caffe": BGR minus mean; "torch": standardised; "raw"
    min_size: int = 32


APPLICATIONS: dict[str, _Application] = {
    "mobilenetv2": _Application("MobileNetV2", "tf"),
    "efficientnetb0": _Application("EfficientNetB0", "raw"),
    "resnet50": _Application("ResNet50", "caffe"),
    "vgg16": _Application("VGG16", "caffe"),
    "mobilenetv3small": _Application("MobileNetV3Small", "raw"),
    "densenet121": _Application("DenseNet121", "torch"),
}
_IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)
_IMAGENET_MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_STD_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def application_backbone(
    x: Tensor,
    name: str,
    *,
    weights: str | None = None,
    trainable: bool = True,
    alpha: float = 1.0,
) -> tuple[Tensor, keras.Model]:
    """A `keras.applications` feature extractor on [0, 255] pixels, with its own preprocessing.

    Grayscale inputs are repeated to three channels and inputs smaller than the backbone's
    minimum are upsized (bilinear) inside the model, so any data source works.

    Args:
        x: the input tensor, pixels in [0, 255].
        name: one of `mobilenetv2`, `efficientnetb0`, `resnet50`, `vgg16`, `mobilenetv3small`,
            `densenet121`.
        weights: `None` (random), `"imagenet"` (from the Keras cache, downloaded once where a
            network exists) or the path of a local weights file for the model without its top.
            Defaults to `None`.
        trainable: whether the base trains; a frozen base runs in inference mode.
            Defaults to `True`.
        alpha: width multiplier of the MobileNet backbones (ignored by the others).
            Defaults to `1.0`.

    Returns:
        The feature map and the base model (for `fine_tune`).
    """
    if name not in APPLICATIONS:
        raise SpaceError(f"unknown backbone {name!r}; use one of {', '.join(APPLICATIONS)}.")
    spec = APPLICATIONS[name]
    if x.shape[-1] == 1:
        x = layers.Concatenate(name=f"{name}_to_rgb")([x, x, x])
    height, width = int(x.shape[1]), int(x.shape[2])
    if min(height, width) < spec.min_size:
        scale = spec.min_size / min(height, width)
        height, width = math.ceil(height * scale), math.ceil(width * scale)
        x = layers.Resizing(height, width, interpolation="bilinear", name=f"{name}_upsize")(x)
    x = _application_preprocessing(x, name, spec.preprocessing)
    constructor = getattr(keras.applications, spec.constructor)
    options = {"alpha": alpha} if name.startswith("mobilenet") else {}
    base = _make_application(constructor, name, weights, (height, width, 3), options)
    base.trainable = trainable
    features = base(x, training=False if not trainable else None)
    return features, base


def _make_application(
    constructor: Any,
    name: str,
    weights: str | None,
    shape: tuple[int, int, int],
    options: dict[str, float],
) -> keras.Model:
    if weights not in (None, "imagenet") and not os.path.isfile(str(weights)):
        raise ValueError(
            f"backbone {name}: weights file {weights} does not exist; give None, 'imagenet' or "
            "the path of a weights file of the model without its top."
        )
    try:
        with warnings.catch_warnings():
            # Keras warns that imagenet weights of 224 px are used for other input sizes.
            warnings.simplefilter("ignore", UserWarning)
            return constructor(
                include_top=False, weights=weights, input_shape=shape, pooling=None, **options
            )
    except Exception as exc:
        if weights == "imagenet" and "fetch" in f"{exc}{type(exc).__name__}".lower():
            from automl.data.sources import keras_cache_dir

            raise ValueError(
                f"backbone {name}: imagenet weights are not in the Keras cache and cannot be "
                f"downloaded ({one_line(exc, 240)}); place that file in "
                f"{keras_cache_dir().parent / 'models'} or set weights to a local file."
            ) from exc
        raise


def _application_preprocessing(x: Tensor, name: str, mode: str) -> Tensor:
    if mode == "tf":
        return layers.Rescaling(1.0 / 127.5, offset=-1.0, name=f"{name}_preprocess")(x)
    if mode == "caffe":
        # RGB -> BGR and mean subtraction as one fixed 1x1 convolution (no Lambda layer needed).
        conv = layers.Conv2D(3, 1, trainable=False, name=f"{name}_preprocess")
        out = conv(x)
        flip = np.zeros((1, 1, 3, 3), dtype="float32")
        for i in range(3):
            flip[0, 0, i, 2 - i] = 1.0
        conv.set_weights([flip, -np.array(_IMAGENET_MEAN_BGR, dtype="float32")])
        return out
    if mode == "torch":
        norm = layers.Normalization(
            mean=list(_IMAGENET_MEAN_RGB),
            variance=[s**2 for s in _IMAGENET_STD_RGB],
            name=f"{name}_preprocess",
        )
        return norm(x)
    return x  # the application rescales [0, 255] itself


# -- transfer learning, callbacks and schedules ---------------------------------------------------


@dataclass
class FineTune:
    """Second phase of a transfer-learning trial: unfreeze the top layers of `base`.

    Attributes:
        base: the pretrained base model (from `application_backbone`).
        layers: how many of its top layers to unfreeze (BatchNorm stays frozen).
        at_fraction: fraction of the trial's epochs spent on the frozen phase first.
        learning_rate_factor: the fine-tuning learning rate is the first phase's times this.
    """

    base: keras.Model
    layers: int
    at_fraction: float = 0.5
    learning_rate_factor: float = 0.1

    def switch_epoch(self, epochs: int) -> int:
        """0-based epoch at which fine-tuning starts (at least one epoch of each phase)."""
        return min(max(1, round(epochs * self.at_fraction)), max(1, epochs - 1))

    def unfreeze(self) -> int:
        """Unfreeze the top `layers` layers (BatchNorm stays frozen); returns how many."""
        self.base.trainable = True
        count = 0
        for index, layer in enumerate(reversed(self.base.layers)):
            trainable = index < self.layers and not isinstance(layer, layers.BatchNormalization)
            layer.trainable = trainable
            count += trainable
        return count


@dataclass
class TrainingPlan:
    """What the trial runner does beyond `model.fit`: extra callbacks and a fine-tuning phase."""

    callbacks: list[Any] = field(default_factory=list)
    fine_tune: FineTune | None = None


_PLAN_ATTRIBUTE = "_automl_training_plan"


def training_plan(model: keras.Model) -> TrainingPlan:
    """The plan attached to a model (an empty one if none)."""
    plan = getattr(model, _PLAN_ATTRIBUTE, None)
    return plan if isinstance(plan, TrainingPlan) else TrainingPlan()


def _attach(model: keras.Model) -> TrainingPlan:
    plan = training_plan(model)
    object.__setattr__(model, _PLAN_ATTRIBUTE, plan)
    return plan


def fine_tune(
    model: keras.Model,
    base: keras.Model,
    *,
    layers: int,
    at_fraction: float = 0.5,
    learning_rate_factor: float = 0.1,
) -> keras.Model:
    """Train with `base` frozen first, then unfreeze its top `layers` at a lower learning rate.

    Both phases share the trial's epoch budget; the runner recompiles between them.

    Args:
        model: the compiled model.
        base: its pretrained base, built frozen (`application_backbone(..., trainable=False)`).
        layers: number of top layers of `base` to unfreeze; 0 keeps it frozen throughout.
        at_fraction: fraction of the epochs for the frozen phase. Defaults to `0.5`.
        learning_rate_factor: fine-tuning learning rate = initial rate × this.
            Defaults to `0.1`.
    """
    if layers > 0:
        _attach(model).fine_tune = FineTune(base, layers, at_fraction, learning_rate_factor)
    return model


def add_callbacks(model: keras.Model, *callbacks: keras.callbacks.Callback) -> keras.Model:
    """Keras callbacks the trial runner passes to `fit` for this model."""
    _attach(model).callbacks.extend(callbacks)
    return model


def reduce_on_plateau(model: keras.Model, *, factor: float = 0.5, patience: int = 2) -> None:
    """Halve the learning rate when the validation loss stalls (a callback the runner adds)."""
    add_callbacks(
        model,
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=factor, patience=patience, min_lr=1e-7, verbose=0
        ),
    )


SCHEDULES = ("constant", "cosine", "plateau")


def learning_rate_schedule(
    name: str,
    learning_rate: float,
    *,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 1.0,
) -> Any:
    """A learning rate or schedule by name: `constant`, `cosine` (with linear warmup), or
    `plateau` (constant here; pair it with `reduce_on_plateau(model)`).

    Args:
        name: the schedule.
        learning_rate: the peak (or constant) learning rate.
        epochs: the trial's epoch budget (`info.epochs`).
        steps_per_epoch: batches per epoch (`info.steps_per_epoch(batch_size)`).
        warmup_epochs: warmup length of `cosine`. Defaults to `1.0`.
    """
    if name in ("constant", "plateau"):
        return learning_rate
    if name == "cosine":
        total = max(1, epochs * steps_per_epoch)
        warmup = min(total - 1, round(warmup_epochs * steps_per_epoch))
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=learning_rate * 0.1 if warmup else learning_rate,
            decay_steps=max(1, total - warmup),
            alpha=0.01,
            warmup_target=learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    raise SpaceError(f"unknown learning-rate schedule {name!r}; use one of {', '.join(SCHEDULES)}.")


# -- augmentation ---------------------------------------------------------------------------------

AUGMENTATION_PREFIX = "augment_"


def augmentation(
    x: Tensor,
    *,
    flip: str | None = None,
    rotation: float = 0.0,
    translation: float = 0.0,
    zoom: float = 0.0,
    contrast: float = 0.0,
    seed: int | None = None,
) -> Tensor:
    """Random augmentation layers, active in training only and removed from exported models.

    Args:
        x: the input tensor (pixels in [0, 255]).
        flip: `"horizontal"`, `"vertical"`, `"horizontal_and_vertical"`, or None / `"none"`.
            Defaults to `None`.
        rotation: maximum rotation as a fraction of a full turn; 0 for none. Defaults to `0.0`.
        translation: maximum shift as a fraction of height and width. Defaults to `0.0`.
        zoom: maximum zoom in or out as a fraction. Defaults to `0.0`.
        contrast: maximum contrast change as a fraction. Defaults to `0.0`.
        seed: seed of the random layers. Defaults to `None`.
    """
    prefix = AUGMENTATION_PREFIX
    if flip and flip != "none":
        x = layers.RandomFlip(flip, seed=seed, name=f"{prefix}flip")(x)
    if rotation > 0:
        x = layers.RandomRotation(
            rotation, fill_mode="reflect", seed=seed, name=f"{prefix}rotation"
        )(x)
    if translation > 0:
        x = layers.RandomTranslation(
            translation, translation, fill_mode="reflect", seed=seed, name=f"{prefix}translation"
        )(x)
    if zoom > 0:
        x = layers.RandomZoom(zoom, fill_mode="reflect", seed=seed, name=f"{prefix}zoom")(x)
    if contrast > 0:
        x = layers.RandomContrast(
            contrast, value_range=(0, 255), seed=seed, name=f"{prefix}contrast"
        )(x)
    return x


def _l2(value: float) -> regularizers.Regularizer | None:
    return regularizers.L2(value) if value > 0 else None
