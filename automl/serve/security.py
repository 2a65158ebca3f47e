"""The service's guards: the bearer token, paths that must stay inside their folder, and
uploads that must be small, real images."""

from __future__ import annotations

import hmac
from pathlib import Path

from fastapi import HTTPException, Request


def check_token(request: Request, token: str | None) -> None:
    """Refuse a request without the server's token (none configured: loopback, allowed).

    The comparison takes the same time whatever the token given; the token is never echoed.
    """
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8"), token.encode("utf-8")
    ):
        raise HTTPException(
            status_code=401,
            detail="this call needs the server's token: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )


def inside(base: Path, name: str, what: str) -> Path:
    """`base / name` if it exists and, links resolved, stays inside `base`; else 404.

    No request parameter becomes a path any other way: absolute paths, `..`, and links that
    lead out of `base` are all refused the same way as a name that is not there.
    """
    missing = HTTPException(status_code=404, detail=f"no {what} {name!r} in the served folder")
    if (
        not name
        or "\x00" in name
        or Path(name).is_absolute()
        or name.startswith("~")
        or ".." in Path(name).parts
    ):
        raise missing
    root = base.resolve()
    try:
        resolved = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):
        raise missing from None
    if resolved == root or not resolved.is_relative_to(root):
        raise missing
    return resolved


def check_image(path: Path, max_pixels: int) -> str | None:
    """Why an uploaded file is not accepted (None: a readable image within the limits).

    Only the header is read: the size a file declares is checked before any decoding.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        from automl.data.images import too_many_pixels

        return too_many_pixels(exc)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return "not an image"
    if width * height > max_pixels:
        return f"{width}x{height} is more than {max_pixels:,} pixels; send a smaller image"
    return None
