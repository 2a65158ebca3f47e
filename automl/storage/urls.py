"""Storage URLs and study names: defaults, validation, and how a URL is shown.

Only SQLAlchemy's URL parser is used (no connection is made here), so these checks are cheap
and run before any work starts. Every URL shown anywhere (terminal, errors, logs, reports) goes
through `redact_url`, and every free text that may quote one through `redact_text`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

from automl.errors import StoreError, shown_path

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

DEFAULT_DB = Path("runs") / "automl.db"
STUDY_NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_STUDY_NAME = re.compile(STUDY_NAME_PATTERN)
HIDDEN = "***"
# Query parameters that carry a secret (libpq's `password` and `sslpassword`, MySQL's `passwd`,
# tokens and secrets of other drivers).
_SECRET_KEY = re.compile(r"pass|secret|token", re.IGNORECASE)
_SECRET_PARAMETER = re.compile(
    r"((?:^|[?&;,\s])[^=&?;,\s]*(?:pass|secret|token)[^=&?;,\s]*=)([^&;,\s]*)", re.IGNORECASE
)
_ALREADY_HIDDEN = re.compile(r"\*\*\*[:.;)]*")
# A URL inside free text (an exception's message); quotes and brackets end it.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>:.,;)]")


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

    shown = redact_url(url)
    if url.startswith("postgres://"):
        suggested = redact_url("postgresql://" + url[len("postgres://") :])
        raise StoreError(
            f"--storage {shown}: SQLAlchemy does not accept postgres://; write postgresql:// "
            f"instead ({suggested})."
        )
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Not chained: SQLAlchemy's message quotes the URL, password and all.
        raise StoreError(
            f"--storage {shown}: not a database URL; use sqlite:///runs/automl.db or "
            "postgresql://user:password@host/db."
        ) from None
    if not _parsed_safely(parsed):
        raise StoreError(
            f"--storage {shown}: the user or password holds an '@'; write each '@' in them "
            "as %40 (p@ss becomes p%40ss)."
        )
    if url.startswith("postgresql://"):
        # The `postgres` extra installs psycopg (3); SQLAlchemy 2.0 would pick psycopg2 for a
        # URL that names no driver (2.1 picks psycopg). The rest of the URL stays as written.
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise StoreError(
                f"--storage {shown}: an in-memory SQLite database would lose every trial when "
                "the search ends; give a file, e.g. sqlite:///runs/automl.db."
            )
        folder = Path(database).expanduser().parent
        if not folder.exists():
            if not create_folder:
                raise StoreError(
                    f"--storage {shown}: the folder {shown_path(folder)} does not exist; create "
                    "it or choose another path."
                )
            folder.mkdir(parents=True, exist_ok=True)
    return url


def redact_url(url: str) -> str:
    """The URL as shown anywhere: its password, and any secret query parameter, as `***`.

    SQLAlchemy's URL object renders it. A string SQLAlchemy cannot parse, or parses in a way
    that would show part of a password (an unescaped `@` in it), is shown with everything
    between `://` and its last `@` hidden: too much hidden is better than a password shown.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return _redact_unparsed(url)
    if not _parsed_safely(parsed):
        return _redact_unparsed(url)
    secret_values = [
        value
        for key, values in parsed.query.items()
        if _SECRET_KEY.search(key)
        for value in ((values,) if isinstance(values, str) else values)
    ]
    if parsed.password in (None, HIDDEN) and all(value == HIDDEN for value in secret_values):
        # Nothing (left) to hide: shown exactly as given, as SQLAlchemy would escape it anew.
        return url
    bare = parsed.set(query={}).render_as_string(hide_password=True)
    if not parsed.query:
        return bare
    pairs = []
    for key, values in parsed.query.items():
        for value in (values,) if isinstance(values, str) else values:
            shown = HIDDEN if _SECRET_KEY.search(key) else quote_plus(value)
            pairs.append(f"{quote_plus(key)}={shown}")
    return f"{bare}?{'&'.join(pairs)}"


def url_has_secret(url: str) -> bool:
    """Whether showing `url` as given would show a password or another secret."""
    return redact_url(url) != url


def redact_text(text: str, *urls: str) -> str:
    """`text` (an error message, a log line) with the secrets of `urls`, and of any URL it
    quotes, hidden.

    A driver's message may quote a password outside any URL (a host name made of its second
    half, after an unescaped `@`), so each secret of the given URLs is hidden wherever it
    stands as a whole token: not inside a longer word, so that a short or common password
    ("p", "postgres") does not garble the rest of the message ("accept", "postgresql://").
    """
    for url in urls:
        if not url:
            continue
        text = text.replace(url, redact_url(url))
        for secret in sorted({s for s in _secrets(url) if s}, key=len, reverse=True):
            text = _as_token(secret).sub(HIDDEN, text)
    text = _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)
    return _SECRET_PARAMETER.sub(_hide_parameter, text)


def _as_token(secret: str) -> re.Pattern[str]:
    """`secret` where no letter or digit continues it on either side, and not as a URL's
    scheme (`postgres://`: every URL has one, so showing it shows nothing)."""
    before = r"(?<![A-Za-z0-9])" if secret[0].isalnum() else ""
    after = r"(?![A-Za-z0-9]|(?:\+\w+)?://)" if secret[-1].isalnum() else ""
    return re.compile(before + re.escape(secret) + after)


def _hide_parameter(match: re.Match[str]) -> str:
    if _ALREADY_HIDDEN.fullmatch(match.group(2)):
        return match.group(0)  # hidden before, and the text's own punctuation follows
    return match.group(1) + HIDDEN


def _parsed_safely(parsed: URL) -> bool:
    """Whether SQLAlchemy found the whole password: its pattern ends a password at the first
    `@`, so an unescaped `@` in one leaves the rest in the host or database name."""
    if parsed.password is None:
        return True
    return "@" not in (parsed.host or "") + (parsed.database or "")


def _credentials(url: str) -> tuple[int, int] | None:
    """Where the user and password of a URL SQLAlchemy cannot read may be: between `://` (or
    the start) and the last `@`."""
    start = url.find("://")
    start = 0 if start < 0 else start + 3
    end = url.rfind("@")
    return (start, end) if end >= start else None


def _redact_unparsed(url: str) -> str:
    span = _credentials(url)
    if span is not None:
        url = url[: span[0]] + HIDDEN + url[span[1] :]
    return _SECRET_PARAMETER.sub(_hide_parameter, url)


def _secrets(url: str) -> Iterator[str]:
    """Each way `url`'s secrets may be spelled in a message: as given, decoded, in parts."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    for match in _SECRET_PARAMETER.finditer(url):
        if match.group(2):
            yield match.group(2)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        parsed = None
    if parsed is not None and _parsed_safely(parsed):
        if parsed.password:
            yield parsed.password
            yield quote(parsed.password, safe="")
        for key, values in parsed.query.items():
            if _SECRET_KEY.search(key):
                yield from ((values,) if isinstance(values, str) else values)
        return
    # SQLAlchemy cannot tell where the password ends: everything after the first `:` up to
    # the last `@` may be part of it, and a driver may quote any of its `@`-separated parts.
    span = _credentials(url)
    if span is not None:
        _, colon, password = url[span[0] : span[1]].partition(":")
        if colon and password:
            yield password
            yield quote(password, safe="")  # hunt%40er2: its halves sit inside one word
            yield from password.split("@")


def study_name_from(text: str, fallback: str) -> str:
    """A study name made from free text (a data folder's name, a function's name): characters
    the pattern refuses become `_`; `fallback` when nothing is left."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:128].replace("..", "__")
    if name and not re.match(r"[A-Za-z0-9_]", name):
        name = "_" + name[:127]
    return name or fallback


def check_study_name(name: str) -> str:
    """Study names become folder names: one safe pattern, shown in the error."""
    if not _STUDY_NAME.fullmatch(name) or ".." in name:
        raise StoreError(
            f"study name {name!r} is not allowed; use 1-128 letters, digits, '_', '-' or '.', "
            f"starting with a letter, digit or '_' and without '..' (pattern {STUDY_NAME_PATTERN})."
        )
    return name
