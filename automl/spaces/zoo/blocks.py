"""Layer blocks of the zoo: pixel scaling, a conv stack, a small ResNet and a classifier head.

Blocks take plain values (never `hp`), so a space reads like ordinary Keras code and the same
block serves every space.
"""

from __future__ import annotations

from typing import Any

from keras import layers, regularizers

Tensor = Any
"""A symbolic Keras tensor, as blocks take and return them."""
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
        prefix = f"{name}{block + 1}"
        x = _conv_bn(x, width, kernel_size, l2=l2, names=(prefix, f"{prefix}_bn", f"{prefix}_relu"))
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
    stem = f"{name}_stem"
    x = _conv_bn(x, filters, 3, l2=l2, names=(stem, f"{stem}_bn", f"{stem}_relu"))
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
    y = _conv_bn(
        x, width, 3, l2=l2, strides=stride, names=(f"{name}_conv1", f"{name}_bn1", f"{name}_relu1")
    )
    y = _conv_bn(y, width, 3, l2=l2, names=(f"{name}_conv2", f"{name}_bn2", None))
    if stride != 1 or shortcut.shape[-1] != width:
        shortcut = _conv_bn(
            shortcut,
            width,
            1,
            l2=l2,
            strides=stride,
            padding="valid",
            names=(f"{name}_proj", f"{name}_proj_bn", None),
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


def _conv_bn(
    x: Tensor,
    width: int,
    kernel_size: int,
    *,
    l2: float,
    names: tuple[str, str, str | None],
    strides: int = 1,
    padding: str = "same",
) -> Tensor:
    """Conv2D (no bias: BatchNorm follows) – BatchNorm – ReLU, named (conv, bn, relu); no ReLU
    where its name is None."""
    conv_name, bn_name, relu_name = names
    x = layers.Conv2D(
        width,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_regularizer=_l2(l2),
        name=conv_name,
    )(x)
    x = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=bn_name)(x)
    return x if relu_name is None else layers.ReLU(name=relu_name)(x)


def _l2(value: float) -> regularizers.Regularizer | None:
    return regularizers.L2(value) if value > 0 else None
