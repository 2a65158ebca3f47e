"""Image folders: one subfolder per class, optionally under `train/ val/ test/`.

The folder is scanned once, reading only each file's header: zero-byte, corrupt, non-image and
oversized files are listed by path before anything else (or skipped with `skip_bad_images`), and
the common size and colour mode are chosen (mixed ones are converted, with the counts reported).
`automl.data.cache` then decodes each image once, at that size, into the on-disk cache that
every worker reads from.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from automl.errors import DataError, shown_path

if TYPE_CHECKING:
    from automl.data.sources import DataOptions

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
class FolderListing:
    """What the scan of a folder found: the readable files, the image shape, the notes.

    Attributes:
        root: the folder.
        class_names: one per class subfolder, index = label.
        files: per split given by the folder (`train`, and `val`/`test` when present), the
            (path, label) of each file whose header is a readable image within the pixel limit.
        size: (height, width) every image is resized to.
        colour: whether images become RGB (else grayscale).
        notes: what loading changes (resized, converted, skipped).
        bad: files refused, with why (already reported unless `skip_bad_images`).
    """

    root: Path
    class_names: tuple[str, ...]
    files: dict[str, list[tuple[Path, int]]]
    size: tuple[int, int]
    colour: bool
    notes: tuple[str, ...] = ()
    bad: tuple[tuple[Path, str], ...] = ()


def scan_image_folder(root: Path, options: DataOptions) -> FolderListing:
    """List the images of a folder and check every file's header, without decoding any.

    Zero-byte, non-image, corrupt-header and oversized files (decompression bombs included) are
    found here (`bad`); a file whose pixels turn out to be truncated is found when the image
    cache is built. Both are reported together, by path, before any trial (`report_bad`).

    Raises:
        DataError: empty folder, no class subfolders, or no readable image.
    """
    shown = shown_path(root)
    found, class_names = _scan(root)
    headers, bad = _read_headers(found, options.max_pixels)
    if not headers:
        report_bad(root, bad, options)
        raise DataError(f"{shown}: no readable images; add PNG/JPEG/BMP/GIF files.")
    size = options.image_size or _common_size([h.size for h in headers])
    colour = any(h.colour for h in headers)
    notes: list[str] = []
    resized = sum(1 for h in headers if h.size != size)
    if resized:
        notes.append(f"resized {resized} image(s) to {size[0]}×{size[1]}")
    converted = sum(1 for h in headers if h.colour != colour)
    if converted:
        notes.append(f"converted {converted} grayscale image(s) to RGB")
    files: dict[str, list[tuple[Path, int]]] = {}
    for header in headers:
        files.setdefault(header.found.split, []).append((header.found.path, header.found.label))
    if "train" not in files:
        raise DataError(f"{shown}/train: no readable training images.")
    return FolderListing(root, class_names, files, size, colour, tuple(notes), tuple(bad))


def report_bad(root: Path, bad: list[tuple[Path, str]], options: DataOptions) -> None:
    """Refuse bad files, listed by path, unless they are to be skipped."""
    if bad and not options.skip_bad_images:
        listed = "; ".join(f"{shown_path(p)} ({why})" for p, why in bad[:_LISTED])
        more = f"; and {len(bad) - _LISTED} more" if len(bad) > _LISTED else ""
        raise DataError(
            f"{shown_path(root)}: {len(bad)} bad image file(s): {listed}{more}. Fix or remove "
            "them, or pass --skip-bad-images to skip them."
        )


@dataclass(frozen=True)
class _Header:
    found: _Found
    size: tuple[int, int]  # (height, width)
    colour: bool


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


def _read_headers(
    found: list[_Found], max_pixels: int
) -> tuple[list[_Header], list[tuple[Path, str]]]:
    from PIL import Image

    headers: list[_Header] = []
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
                with Image.open(path) as image:  # reads the header only
                    width, height = image.size
                    if width * height > max_pixels:
                        bad.append((path, f"{width}×{height} is over the {max_pixels}-pixel limit"))
                        continue
                    colour = image.mode not in ("1", "L", "LA", "I", "I;16", "F") and not (
                        _is_gray(image)
                    )
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            bad.append((path, too_many_pixels(exc)))
            continue
        except (OSError, ValueError, SyntaxError) as exc:
            bad.append((path, f"corrupt: {type(exc).__name__}"))
            continue
        headers.append(_Header(item, (height, width), colour))
    return headers, bad


def too_many_pixels(exc: Exception) -> str:
    """Why Pillow refused to open a file (its `DecompressionBombError` or the warning made an
    error): the pixel count the header declares, against Pillow's limit."""
    from PIL import Image

    declared = re.search(r"\((\d+) pixels\)", str(exc))
    count = f"{int(declared.group(1)):,} pixels" if declared else "too many pixels"
    return (
        f"declares {count}, over Pillow's limit of {Image.MAX_IMAGE_PIXELS:,}: a possible "
        "decompression bomb, not decoded"
    )


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


def decode_image(path: Path, size: tuple[int, int], colour: bool) -> np.ndarray:
    """One image as uint8 pixels (height, width, 3 or 1), resized and converted.

    Raises:
        OSError, ValueError, SyntaxError: the file does not decode (truncated, corrupt).
    """
    from PIL import Image

    mode = "RGB" if colour else "L"
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            image.seek(0)
            # A JPEG at least twice the size on both sides is decoded at 1/2, 1/4 or 1/8 scale
            # (still at least the size), then resized: 7× faster for a 12-megapixel photo.
            image.draft(mode, (size[1], size[0]))
            converted = image.convert(mode)
    if converted.size != (size[1], size[0]):
        converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(converted, dtype=np.uint8)
    return array if colour else array[..., np.newaxis]
