"""`keras.applications` backbones on [0, 255] pixels: channels, minimum size and each
application's own preprocessing happen inside the model; weights come from the Keras cache or a
local file."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import layers

from automl.errors import SpaceError, one_line
from automl.spaces.zoo.blocks import Tensor


@dataclass(frozen=True)
class _Application:
    constructor: str
    preprocessing: str  # "tf": [-1, 1]; "caffe": BGR minus mean; "torch": standardised; "raw"
    min_size: int = 32


APPLICATIONS: Mapping[str, _Application] = {
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

    Raises:
        SpaceError: an unknown backbone, a missing weights file, or imagenet weights that are
            neither in the Keras cache nor downloadable.
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
        raise SpaceError(
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

            raise SpaceError(
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
