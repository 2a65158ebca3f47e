"""Image files that lie about themselves, for the bad-input tests (RELIABILITY, bad input 9).

Shared by the folder-scan tests here and the predict tests in `tests/deploy_tests`.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image

BOMB_SIDE = 20_000
"""20000×20000 px: past twice Pillow's pixel limit, so opening it raises
`DecompressionBombError`."""

WARNING_SIDE = 12_000
"""12000×12000 px: past Pillow's pixel limit but under twice it, where Pillow only warns
(`DecompressionBombWarning`) and would go on to allocate the whole image."""


def write_bomb(path: Path, side: int = BOMB_SIDE) -> Path:
    """A 1×1 PNG whose header declares `side`×`side` pixels (67 bytes).

    The IHDR chunk (width and height) is patched and its CRC recomputed, so every reader takes
    the declared size at its word, as it would for a real decompression bomb.
    """
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"  # the first chunk, right after the 8-byte signature
    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def write_truncated(path: Path) -> Path:
    """A real 16×16 PNG cut in half (its header is valid, its pixel data is not all there)."""
    buffer = io.BytesIO()
    Image.effect_noise((16, 16), 64).save(buffer, "PNG")
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def write_not_an_image(path: Path) -> Path:
    """Text under an image extension (`notes.jpg`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("these are my notes, not a picture\n", encoding="utf-8")
    return path
