"""Image folders: one subfolder per class, optionally under `train/ val/ test/`.

Every file is checked before any training: zero-byte, corrupt, non-image and oversized files are
listed by path (or skipped with `skip_bad_images`); mixed sizes and colour modes are converted to
one shape, with the counts reported.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from automl.data.dataset import Split
from automl.errors import DataError, shown_path

if TYPE_CHECKING:
    from automl.data.sources import DataOptions, Pools

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLIT_NAMES = ("train", "val", "test")
_MAX_SIDE = 256
_LISTED = 10


@dataclass(frozen=True)
class _Found:
    path: Path
    label: int
    split: str


@dataclass(frozen=True)
class _Decoded:
    found: _Found
    size: tuple[int, int]  # (height, width)
    colour: bool
    image: object  # PIL.Image.Image, loaded


def read_image_folder(root: Path, options: DataOptions) -> Pools:
    """Decode every image under `root` into one array per split.

    Raises:
        DataError: empty folder, no class subfolders, bad files (listed), or one class.
    """
    from automl.data.sources import Pools

    shown = shown_path(root)
    found, class_names = _scan(root)
    decoded, bad = _decode_all(found, options.max_pixels)
    notes: list[str] = []
    if bad:
        if not options.skip_bad_images:
            listed = "; ".join(f"{shown_path(p)} ({why})" for p, why in bad[:_LISTED])
            more = f"; and {len(bad) - _LISTED} more" if len(bad) > _LISTED else ""
            raise DataError(
                f"{shown}: {len(bad)} bad image file(s): {listed}{more}. Fix or remove them, "
                "or pass --skip-bad-images to skip them."
            )
        notes.append(f"skipped {len(bad)} bad file(s)")
    if not decoded:
        raise DataError(f"{shown}: no readable images; add PNG/JPEG/BMP/GIF files.")
    size = options.image_size or _common_size([d.size for d in decoded])
    colour = any(d.colour for d in decoded)
    resized = sum(1 for d in decoded if d.size != size)
    if resized:
        notes.append(f"resized {resized} image(s) to {size[0]}×{size[1]}")
    converted = sum(1 for d in decoded if d.colour != colour)
    if converted:
        notes.append(f"converted {converted} grayscale image(s) to RGB")
    arrays: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    for item in decoded:
        xs, ys = arrays.setdefault(item.found.split, ([], []))
        xs.append(_to_array(item.image, size, colour))
        ys.append(item.found.label)
    splits = {
        split: Split(np.stack(xs), np.array(ys, dtype=np.int64))
        for split, (xs, ys) in arrays.items()
    }
    if "train" not in splits:
        raise DataError(f"{shown}/train: no readable training images.")
    return Pools(splits, class_names, tuple(notes))


def _scan(root: Path) -> tuple[list[_Found], tuple[str, ...]]:
    shown = shown_path(root)
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DataError(f"{shown}: the folder is empty; put one subfolder of images per class.")
    folders = {p.name: p for p in entries if p.is_dir()}
    split_folders = {name: folders[name] for name in SPLIT_NAMES if name in folders}
    if "train" in split_folders:
        class_names = _class_names(split_folders["train"])
        found = []
        for split, folder in split_folders.items():
            names = _class_names(folder)
            unknown = sorted(set(names) - set(class_names))
            if unknown:
                raise DataError(
                    f"{shown_path(folder)}: classes {', '.join(unknown)} are not in "
                    f"{shown_path(split_folders['train'])}; use the same class folders."
                )
            found += _files(folder, class_names, split)
        return found, class_names
    if not folders:
        loose = [p for p in entries if p.is_file()]
        raise DataError(
            f"{shown}: {len(loose)} file(s) but no class subfolders; put each class in its own "
            f"folder ({shown}/cat/1.png, {shown}/dog/2.png)."
        )
    class_names = _class_names(root)
    return _files(root, class_names, "train"), class_names


def _class_names(folder: Path) -> tuple[str, ...]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(
            f"{shown_path(folder)}: no class subfolders; put each class in its own folder."
        )
    return tuple(names)


def _files(folder: Path, class_names: tuple[str, ...], split: str) -> list[_Found]:
    found = []
    for label, name in enumerate(class_names):
        class_folder = folder / name
        if not class_folder.is_dir():
            continue
        for path in sorted(class_folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                found.append(_Found(path, label, split))
    if not found:
        raise DataError(f"{shown_path(folder)}: the class folders hold no files.")
    return found


def _decode_all(
    found: list[_Found], max_pixels: int
) -> tuple[list[_Decoded], list[tuple[Path, str]]]:
    from PIL import Image

    decoded: list[_Decoded] = []
    bad: list[tuple[Path, str]] = []
    for item in found:
        path = item.path
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            bad.append((path, "not an image file"))
            continue
        if path.stat().st_size == 0:
            bad.append((path, "zero bytes"))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(path)
                width, height = image.size
                if width * height > max_pixels:
                    bad.append((path, f"{width}×{height} is over the {max_pixels}-pixel limit"))
                    continue
                image.seek(0)
                image.load()
        except (
            OSError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as exc:
            bad.append((path, f"corrupt: {type(exc).__name__}"))
            continue
        colour = image.mode not in ("1", "L", "LA", "I", "I;16", "F") and not _is_gray(image)
        decoded.append(_Decoded(item, (height, width), colour, image))
    return decoded, bad


def _is_gray(image: object) -> bool:
    # A palette image whose palette is all grays is grayscale in effect.
    mode = getattr(image, "mode", "")
    if mode != "P":
        return False
    palette = image.getpalette() or []  # type: ignore[attr-defined]
    triples = zip(palette[0::3], palette[1::3], palette[2::3], strict=False)
    return all(r == g == b for r, g, b in triples)


def _common_size(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    height, width = Counter(sizes).most_common(1)[0][0]
    scale = min(1.0, _MAX_SIDE / max(height, width))
    return (max(1, round(height * scale)), max(1, round(width * scale)))


def _to_array(image: object, size: tuple[int, int], colour: bool) -> np.ndarray:
    from PIL import Image

    assert isinstance(image, Image.Image)
    converted = image.convert("RGB" if colour else "L")
    if converted.size != (size[1], size[0]):
        converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(converted, dtype=np.uint8)
    return array if colour else array[..., np.newaxis]
