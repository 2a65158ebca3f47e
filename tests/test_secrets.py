"""Passwords in storage URLs: never on the terminal, in an error, a report, a log, the store, or a
child's command line (see also `test_retrain_child.py` for a real child's).

The end-to-end search needs a URL that can carry a password, so it runs on PostgreSQL when
AUTOML_TEST_POSTGRES_URL is set (CI sets it); the rendering itself is unit-tested for every form
in `storage_tests/test_urls.py`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from automl.cli import main
from automl.cli.common import storage_flag_note, storage_flag_suffix
from automl.cli.retrain_command import retrain_in_subprocess

from .conftest import NO_POSTGRES, postgres_url
from .search_tests.test_search import SPACE

POSTGRES = postgres_url()
needs_postgres = pytest.mark.skipif(POSTGRES is None, reason=NO_POSTGRES)


def leaks(text: str, url: str) -> list[str]:
    """The ways `text` shows the password of `url` (empty when it does not)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    password = parsed.password or parsed.query.get("password")
    assert isinstance(password, str) and password
    forms = {quote(password, safe=""), quote(password), password}
    found = []
    for form in forms:
        for context in (f":{form}@", f"password={form}", url):
            if context in text:
                found.append(context)
    # The CI password is also the user and database name; elsewhere the bare password counts too.
    other = {parsed.username, parsed.database, parsed.host}
    if password not in other and password in text:
        found.append(password)
    # The test URLs spell the password percent-encoded: that spelling anywhere is a leak.
    encoded = "".join(f"%{b:02X}" for b in password.encode())
    if encoded in text:
        found.append(encoded)
    return found


def url_forms(url: str) -> dict[str, str]:
    """The server's URL with its password in the user part, and as a `?password=` parameter;
    both spell the password percent-encoded, so that a leak cannot hide behind the user name."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    assert parsed.password
    encoded = "".join(f"%{b:02X}" for b in parsed.password.encode())
    host = parsed.host + (f":{parsed.port}" if parsed.port else "")
    base = f"{parsed.drivername}://{quote(parsed.username or '', safe='')}"
    return {
        "userinfo": f"{base}:{encoded}@{host}/{parsed.database}",
        "query": f"{base}@{host}/{parsed.database}?password={encoded}",
    }


# -- end to end on PostgreSQL ---------------------------------------------------------------------


@needs_postgres
@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_search_show_report_and_errors_never_show_the_password(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert POSTGRES is not None
    url = url_forms(POSTGRES)[form]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOML_STORAGE", raising=False)
    monkeypatch.setenv("AUTOML_ARTIFACTS", str(tmp_path / "artifacts"))
    (tmp_path / "space.py").write_text(SPACE.read_text())
    study = f"pw-{uuid.uuid4().hex[:10]}"

    code = main(
        [
            "search",
            "space.py",
            "--executor",
            "function",
            "--trials",
            "3",
            "--epochs",
            "2",
            "--workers",
            "1",
            "--study",
            study,
            "--storage",
            url,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert not leaks(out + err, url), out + err
    assert f"Study '{study}'" in out and "Next:" in out
    next_lines = out.split("Next:", 1)[1]
    assert '--storage "$AUTOML_STORAGE"' in next_lines
    assert "***" in next_lines  # the note shows which store, password hidden

    # What the search left behind: the report, the worker logs, the stored attributes.
    report = tmp_path / "artifacts" / study / "report.html"
    assert report.is_file()
    assert not leaks(report.read_text(encoding="utf-8"), url)
    logs = list((tmp_path / "artifacts" / study / "logs").rglob("*.log"))
    assert logs  # per host: logs/<host>/cpu0.log
    for log in logs:
        assert not leaks(log.read_text(errors="replace"), url), log
    from automl.storage.store import StudyStore

    store = StudyStore(url)
    study_id = store.storage.get_study_id_from_name(study)
    stored = json.dumps(store.storage.get_study_user_attrs(study_id), default=str)
    assert not leaks(stored, url)

    # The suggested commands work as printed, with the URL in the environment.
    monkeypatch.setenv("AUTOML_STORAGE", url)
    for argv in (["show", study], ["studies"], ["env"]):
        assert main(argv) == 0
        out, err = capsys.readouterr()
        assert not leaks(out + err, url), (argv, out + err)
    monkeypatch.delenv("AUTOML_STORAGE")

    # A wrong password: the error names the store with the password hidden.
    wrong = url.replace("%", "%25", 1) if form == "userinfo" else url + "%25"
    assert main(["studies", "--storage", wrong]) == 2
    out, err = capsys.readouterr()
    assert "***" in err and len(err.strip().splitlines()) == 1
    assert not leaks(out + err, wrong) and not leaks(out + err, url), err


# -- the suggested commands -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:hunter2@h/db",
        "postgresql://:hunter2@h/db",
        "postgresql://u:hunt@er2@h/db",
        "postgresql://u@h/db?password=hunter2",
    ],
)
def test_suggested_commands_never_repeat_the_password(url: str) -> None:
    args = argparse.Namespace(storage=url)
    shown = storage_flag_suffix(args) + " " + (storage_flag_note(args) or "")
    for secret in ("hunter2", "hunt", "er2"):
        assert secret not in shown
    assert '--storage "$AUTOML_STORAGE"' in shown
    assert "h/db" in shown  # the note still says which store


def test_suggested_commands_repeat_a_url_without_a_secret() -> None:
    args = argparse.Namespace(storage="sqlite:///elsewhere/x.db")
    assert storage_flag_suffix(args) == " --storage sqlite:///elsewhere/x.db"
    assert storage_flag_note(args) is None
    assert storage_flag_suffix(argparse.Namespace(storage=None)) == ""


def test_env_command_hides_every_form_of_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOML_STORAGE", "postgresql://u:hunt@er2@h/db")
    monkeypatch.setattr("automl.search.devices.discover_gpus", lambda: [])
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "Default storage" in out
    assert "hunt" not in out and "er2" not in out


# -- the retraining child -------------------------------------------------------------------------


class _Recorder:
    """Stands in for `subprocess.run`: records what would have been started."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        self.calls.append((list(command), dict(kwargs["env"])))
        return subprocess.CompletedProcess(command, 0)


def test_retraining_child_gets_the_url_in_its_environment_not_its_argv() -> None:
    from automl.cli.common import make_console

    url = "postgresql://u:hunter2@h/db?password=xyzzy42"
    run = _Recorder()
    retrain_in_subprocess(make_console(), "cnn", url, run=run)
    [(command, env)] = run.calls
    assert not any("hunter2" in part or "xyzzy42" in part for part in command), command
    assert "--storage" not in command
    assert env["AUTOML_STORAGE"] == url
    assert "cnn" in command
