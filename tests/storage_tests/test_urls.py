"""Storage URLs as shown: every form a password can take in a URL is hidden, whether SQLAlchemy
can parse the URL or not, in the URL itself, in error text, and in the store's messages."""

from __future__ import annotations

import pytest

from automl.errors import StoreError
from automl.storage.urls import check_storage_url, redact_text, redact_url, url_has_secret

# Each form: the URL, what must be shown exactly, and the fragments of the secret that must not
# appear (an unescaped `@` splits a password in two; each half is a leak).
FORMS = [
    ("postgresql://u:hunter2@h/db", "postgresql://u:***@h/db", ["hunter2"]),
    ("postgresql://:hunter2@h/db", "postgresql://:***@h/db", ["hunter2"]),
    ("postgresql://u:hunt@er2@h/db", "postgresql://***@h/db", ["hunt", "er2"]),
    ("postgresql://u:hunt/er2@h/db", "postgresql://u:***@h/db", ["hunt", "er2"]),
    ("postgresql://u@h/db?password=hunter2", "postgresql://u@h/db?password=***", ["hunter2"]),
    (
        "postgresql://u:hunter2@h:5432/db?sslmode=require&password=xyzzy42",
        "postgresql://u:***@h:5432/db?sslmode=require&password=***",
        ["hunter2", "xyzzy42"],
    ),
    ("postgresql+psycopg://u:hunt%40er2@h/db", "postgresql+psycopg://u:***@h/db", ["hunt", "er2"]),
    # SQLAlchemy cannot parse these: everything between :// and the last @ is hidden.
    ("postgresql://u:hunter2@h:port/db", "postgresql://***@h:port/db", ["hunter2"]),
    ("postgresql://u:hunter2@[::1/db", "postgresql://***@[::1/db", ["hunter2"]),
    ("not a url, password=hunter2", "not a url, password=***", ["hunter2"]),
    ("u:hunter2@h/db", "***@h/db", ["hunter2"]),
    # Nothing secret: shown as given.
    ("sqlite:///runs/automl.db", "sqlite:///runs/automl.db", []),
    ("sqlite:////home/me/a@b/x.db", "sqlite:////home/me/a@b/x.db", []),
    ("postgresql://u@h/db", "postgresql://u@h/db", []),
]


@pytest.mark.parametrize(("url", "shown", "secrets"), FORMS)
def test_redact_url_hides_every_form_of_password(url: str, shown: str, secrets: list[str]) -> None:
    result = redact_url(url)
    assert result == shown
    for secret in secrets:
        assert secret not in result
    assert url_has_secret(url) is bool(secrets)


@pytest.mark.parametrize(("url", "shown", "secrets"), [f for f in FORMS if f[2]])
def test_redact_text_hides_the_password_wherever_the_text_holds_it(
    url: str, shown: str, secrets: list[str]
) -> None:
    text = f"cannot open {url}: the server said no (url was '{url}')"
    result = redact_text(text, url)
    for secret in secrets:
        assert secret not in result
    assert "cannot open" in result and "the server said no" in result
    # Without being told the URL, a URL (or a password parameter) in the text is still
    # recognised and redacted.
    if "://" in url or "password=" in url:
        for secret in secrets:
            assert secret not in redact_text(f"error at {url} happened")


def test_redact_text_hides_a_known_password_outside_any_url() -> None:
    url = "postgresql://u:hunter2@h/db"
    shown = redact_text('FATAL: password "hunter2" rejected', url)
    assert shown == 'FATAL: password "***" rejected'


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:hunt@er2@h/db",
        "postgres://u@h/db?password=hunter2",
        "sqlite://?password=hunter2",
        "nonsense://u:hunt@er2@h:port/db",
        "u:hunter2@h/db",
    ],
)
def test_check_storage_url_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        check_storage_url(url)
    message = str(caught.value)
    for secret in ("hunter2", "hunt", "er2"):
        assert secret not in message, message
    # The cause is not chained either: SQLAlchemy's own message quotes the URL.
    assert caught.value.__cause__ is None or "hunt" not in str(caught.value.__cause__)


def test_sqlite_folder_error_shows_the_url_redacted() -> None:
    with pytest.raises(StoreError, match=r"does not exist") as caught:
        check_storage_url("sqlite:///no/such/dir/x.db?password=hunter2")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://automl_ci:hunter2@h/db",
        "postgresql://automl_ci@h/db?password=hunter2",
        "postgresql://automl_ci:hunt@er2@h/db",
    ],
)
def test_redact_text_leaves_the_rest_of_a_message_alone(url: str) -> None:
    shown = redact_url(url)
    text = f'cannot read the study store {shown}: failed for user "automl_ci".'
    assert redact_text(text, url) == text


def test_an_unescaped_at_in_a_password_is_refused_with_the_fix() -> None:
    with pytest.raises(StoreError) as caught:
        check_storage_url("postgresql://u:hunt@er2@h/db")
    message = str(caught.value)
    assert message.startswith("--storage postgresql://***@h/db: the user or password holds an '@'")
    assert "%40" in message and "hunt" not in message and "er2" not in message


def test_an_empty_password_parameter_changes_nothing_else() -> None:
    url = "postgresql://u@h/db?password="
    assert redact_text("failed for user u", url) == "failed for user u"


@pytest.mark.parametrize(
    ("url", "used"),
    [
        ("postgresql://u:pw@h/db", "postgresql+psycopg://u:pw@h/db"),
        (
            "postgresql://u:pw@h:5433/db?sslmode=require",
            "postgresql+psycopg://u:pw@h:5433/db?sslmode=require",
        ),
        ("postgresql+psycopg://u:pw@h/db", "postgresql+psycopg://u:pw@h/db"),
        ("postgresql+psycopg2://u:pw@h/db", "postgresql+psycopg2://u:pw@h/db"),  # chosen: kept
    ],
)
def test_postgresql_urls_use_the_driver_the_postgres_extra_installs(url: str, used: str) -> None:
    """SQLAlchemy 2.0 picks psycopg2 for a bare postgresql:// (2.1 picks psycopg); the
    `postgres` extra installs psycopg (3), so a bare URL must name it."""
    assert check_storage_url(url) == used


def test_postgres_scheme_is_refused_with_the_fix_and_no_password() -> None:
    with pytest.raises(StoreError) as caught:
        check_storage_url("postgres://u:hunter2@h/db")
    message = str(caught.value)
    assert "hunter2" not in message and "postgresql://" in message


@pytest.mark.parametrize(
    ("url", "text", "expected"),
    [
        # A one-letter password: only a token that is exactly it is hidden, not every "p".
        (
            "postgresql://u:p@h/db",
            "cannot open the study store postgresql://u:***@h/db: password p rejected; "
            "pass the right password",
            "cannot open the study store postgresql://u:***@h/db: password *** rejected; "
            "pass the right password",
        ),
        # Docker's default: user, password and database all "postgres". Tokens equal to the
        # password are hidden (the user name would show it), words holding it are not.
        (
            "postgresql://postgres:postgres@localhost/postgres",
            "cannot open the study store postgresql+psycopg://postgres:***@localhost/postgres: "
            "connection refused",
            "cannot open the study store postgresql+psycopg://***:***@localhost/***: "
            "connection refused",
        ),
    ],
)
def test_a_short_or_common_password_hides_only_whole_tokens(
    url: str, text: str, expected: str
) -> None:
    assert redact_text(text, url) == expected


@pytest.mark.parametrize("password", ["p", "postgres", "test"])
def test_postgres_scheme_error_stays_readable_whatever_the_password(password: str) -> None:
    url = f"postgres://u:{password}@h/db"
    with pytest.raises(StoreError) as caught:
        check_storage_url(url)
    message = redact_text(str(caught.value), url)  # as the CLI prints it
    assert "SQLAlchemy does not accept" in message
    assert "write postgresql:// instead (postgresql://u:***@h/db)" in message
    assert f":{password}@" not in message
    assert message.startswith("--storage postgres://")  # a scheme is no secret
