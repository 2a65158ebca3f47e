"""Storage URLs and study names: defaults, validation and redaction.

Only SQLAlchemy's URL parser is used (no connection is made here), so these checks are cheap
and run before any work starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from automl.errors import StoreError, shown_path

DEFAULT_DB = Path("runs") / "automl.db"
STUDY_NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_STUDY_NAME = re.compile(STUDY_NAME_PATTERN)


def default_storage_url(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    """`$AUTOML_STORAGE`, or a SQLite file `runs/automl.db` under the working folder."""
    env = os.environ if env is None else env
    if env.get("AUTOML_STORAGE"):
        return env["AUTOML_STORAGE"]
    return f"sqlite:///{(cwd or Path.cwd()) / DEFAULT_DB}"


def check_storage_url(url: str, *, create_folder: bool = False) -> str:
    """Refuse URLs that would lose data or cannot work; return the URL to use.

    Args:
        url: an SQLAlchemy URL (`sqlite:///path.db`, `postgresql://user:pw@host/db`).
        create_folder: create the folder of a SQLite file (done for the default location).
            Defaults to `False`.

    Raises:
        StoreError: with the password hidden.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if url.startswith("postgres://"):
        raise StoreError(
            f"--storage {redact_url(url)}: SQLAlchemy does not accept postgres://; write "
            f"postgresql://{url[len('postgres://') :].split('@')[-1]} (with user and password)."
        )
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"--storage {redact_url(url)}: not a database URL; use sqlite:///runs/automl.db or "
            "postgresql://user:password@host/db."
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise StoreError(
                f"--storage {url}: an in-memory SQLite database would lose every trial when the "
                "search ends; give a file, e.g. sqlite:///runs/automl.db."
            )
        folder = Path(database).expanduser().parent
        if not folder.exists():
            if not create_folder:
                raise StoreError(
                    f"--storage {url}: the folder {shown_path(folder)} does not exist; create it "
                    "or choose another path."
                )
            folder.mkdir(parents=True, exist_ok=True)
    return url


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***`."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def check_study_name(name: str) -> str:
    """Study names become folder names: one safe pattern, shown in the error."""
    if not _STUDY_NAME.fullmatch(name) or ".." in name:
        raise StoreError(
            f"study name {name!r} is not allowed; use 1-128 letters, digits, '_', '-' or '.', "
            f"starting with a letter, digit or '_' and without '..' (pattern {STUDY_NAME_PATTERN})."
        )
    return name
