"""What `automl serve` is given, checked before it binds: folders, the token, the bind."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from automl.errors import UsageError, shown_path

# Upload limits of the predict endpoint: bytes per file, and pixels a file may declare (checked
# before it is decoded; Pillow's own bomb limit is higher).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000
MAX_FILES = 64


@dataclass(frozen=True)
class ServeConfig:
    """The service's settings.

    Attributes:
        storage: the study store's URL (may hold a password: never shown).
        spaces: the folder of space files that searches may run (nothing else is run).
        models: the folder of export folders that the predict endpoint serves.
        jobs: where job logs go.
        host: the address to bind.
        port: the port.
        token: the bearer token every mutating and predict call needs; None on loopback only.
        max_upload_bytes: bytes per uploaded image.
        max_upload_pixels: pixels an uploaded image may declare.
    """

    storage: str = field(repr=False)
    spaces: Path = Path("spaces")
    models: Path = Path("models")
    jobs: Path = Path("runs") / "serve-jobs"
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = field(default=None, repr=False)
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_upload_pixels: int = MAX_UPLOAD_PIXELS

    def check(self) -> ServeConfig:
        """Refuse a bind that would expose the service without a token, and missing folders.

        Raises:
            UsageError: with the fix.
        """
        if not is_loopback(self.host) and not self.token:
            raise UsageError(
                f"--host {self.host} is reachable from other machines: give --token-file F (a "
                "file holding a long random token, e.g. python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))' > F), or bind to 127.0.0.1."
            )
        if not self.spaces.is_dir():
            raise UsageError(
                f"--spaces {shown_path(self.spaces)}: no such folder; give the folder of your "
                "space files (default spaces/)."
            )
        if self.models.exists() and not self.models.is_dir():
            raise UsageError(f"--models {shown_path(self.models)}: not a folder.")
        return self


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the service on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def read_token(path: Path) -> str:
    """The token in a file (one line; at least 16 characters).

    Raises:
        UsageError: missing, unreadable or too short.
    """
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--token-file {shown_path(path)}: cannot read it ({exc}).") from None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise UsageError(
            f"--token-file {shown_path(path)}: the token must be one word of at least 16 "
            "characters; make one with python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'."
        )
    return token
