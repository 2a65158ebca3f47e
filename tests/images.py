"""Small synthetic image folders for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_png(path: Path, size: tuple[int, int], mode: str, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(), mode=mode).save(path)


def make_folder(root: Path, per_class: int = 6, classes: tuple[str, ...] = ("cat", "dog")) -> Path:
    """Class folders of PNGs: two sizes, RGB and grayscale mixed."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            size = (12, 10) if i % 3 else (16, 16)
            mode = "L" if i % 2 else "RGB"
            write_png(root / name / f"{i}.png", size, mode, seed=c * 100 + i)
    return root
