"""Random augmentation layers: active in training only, removed from exported models by their
name prefix."""

from __future__ import annotations

from keras import layers

from automl.spaces.zoo.blocks import Tensor

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
