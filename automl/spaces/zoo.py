"""The model zoo: building blocks that search spaces compose.

Blocks take plain values (never `hp`), so a space reads like ordinary Keras code and the same
block serves every space. Every model takes float32 pixels in [0, 255] (what the data pipeline
and `automl predict` feed), and scales them itself: the scaling is part of the saved model.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, regularizers

Tensor = Any


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
        x = layers.BatchNormalization(name=f"{name}{block + 1}_bn")(x)
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
    x = layers.BatchNormalization(name=f"{name}_stem_bn")(x)
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
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(
        width, 3, padding="same", use_bias=False, kernel_regularizer=_l2(l2), name=f"{name}_conv2"
    )(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != width:
        shortcut = layers.Conv2D(
            width,
            1,
            strides=stride,
            use_bias=False,
            kernel_regularizer=_l2(l2),
            name=f"{name}_proj",
        )(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
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
) -> keras.Model:
    """Compile for integer labels with accuracy (and top-5 accuracy above 5 classes)."""
    metrics: list[Any] = ["accuracy"]
    if num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=metrics)
    return model


def _l2(value: float) -> regularizers.Regularizer | None:
    return regularizers.L2(value) if value > 0 else None
