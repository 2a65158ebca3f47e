"""The one exception tree of the project.

Two kinds of failure matter (as in Keras Tuner): a mistake the user must fix before any work is
done (exit code 2, one line naming the file or value and the fix) and a failure that costs one
trial only (`TrialError`). Everything else is a runtime error (exit code 1).
"""

from __future__ import annotations

import os
import signal


class AutoMLError(Exception):
    """Base of every error the program raises on purpose.

    Attributes:
        exit_code: the process exit code the command line uses for this error.
    """

    exit_code = 1


class UsageError(AutoMLError):
    """A command-line value is malformed or out of range."""

    exit_code = 2


class SpaceError(AutoMLError):
    """The search-space file is wrong; fatal, raised before any trial runs."""

    exit_code = 2


class UnknownParameter(SpaceError, KeyError):
    """`hp.get(name)` for a parameter the space never defined (a KeyError, as in Keras Tuner)."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class InactiveParameter(SpaceError, ValueError):
    """`hp.get(name)` for a parameter outside the active conditional scope (a ValueError, as in
    Keras Tuner)."""


class DataError(AutoMLError):
    """The data source is missing, empty or holds bad files; fatal, before any trial runs."""

    exit_code = 2


class StoreError(AutoMLError):
    """The storage URL, study name or study state does not allow the requested operation."""

    exit_code = 2


class ExportError(AutoMLError):
    """An export failed one of its checks (an exported format does not match the Keras model);
    nothing was written."""

    exit_code = 1


class TrialError(AutoMLError):
    """A failure that ends one trial only (NaN loss, out of memory, an exception in `build`)."""

    exit_code = 1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped the command after recording what ran.

    A `KeyboardInterrupt`, so code that handles Ctrl-C handles SIGTERM the same way.

    Attributes:
        signum: the signal.
        exit_code: 128 + the signal, as shells report it (130 for Ctrl-C, 143 for SIGTERM).
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum

    @property
    def shown(self) -> str:
        """`Ctrl-C` or the signal's name."""
        return "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as messages show it: relative to the working folder when inside it."""
    text = os.fspath(path)
    try:
        relative = os.path.relpath(text)
    except ValueError:
        return text
    return text if relative.startswith("..") else relative


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message squeezed onto one line of at most `limit` characters."""
    text = " ".join(str(exc).split())
    if not text:
        return type(exc).__name__
    return text[:limit] + ("…" if len(text) > limit else "")
