"""The same store contract on a real PostgreSQL server (CI starts one; set
AUTOML_TEST_POSTGRES_URL to run these locally)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from automl.cli import main
from automl.errors import StoreError
from automl.search import SearchConfig, run_search
from automl.storage.records import TrialState
from automl.storage.store import StudyStore

from ..conftest import NO_POSTGRES, postgres_url
from ..search_tests.test_search import SPACE, fake_gpus

URL = postgres_url()
pytestmark = pytest.mark.skipif(URL is None, reason=NO_POSTGRES)


@pytest.fixture
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOML_ARTIFACTS", str(tmp_path / "artifacts"))
    (tmp_path / "space.py").write_text(SPACE.read_text())
    return f"pg-{uuid.uuid4().hex[:10]}"


def test_search_resume_show_and_report_on_postgresql(
    study: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert URL is not None
    config = SearchConfig(
        space="space.py",
        trials=3,
        executor="function",
        epochs=3,
        storage=URL,
        study=study,
        workers=2,
    )
    first = run_search(config, gpu_probe=fake_gpus(0), cpus=2)
    assert first.record.finished == 3
    second = run_search(
        SearchConfig(**{**config.__dict__, "trials": 5}), gpu_probe=fake_gpus(0), cpus=2
    )
    assert second.record.finished == 5
    assert (tmp_path / "artifacts" / study / "dataset.npz").is_file()
    store = StudyStore(URL)
    assert study in store.study_names()
    summary = next(s for s in store.summaries() if s.name == study)
    assert summary.counts[TrialState.COMPLETE] + summary.counts[TrialState.PRUNED] == 5
    assert main(["show", study, "--storage", URL]) == 0
    assert main(["report", study, "--storage", URL, "-o", str(tmp_path / "r.html")]) == 0
    assert "automl:" not in capsys.readouterr().err


def test_wrong_password_is_reported_without_the_password() -> None:
    assert URL is not None
    user_part, host_part = URL.split("://", 1)[1].split("@", 1)
    wrong = f"postgresql://{user_part.split(':')[0]}:not-the-password@{host_part}"
    with pytest.raises(StoreError) as caught:
        StudyStore(wrong, create=True)
    message = str(caught.value)
    assert "not-the-password" not in message
    assert ":***@" in message and "cannot open the study store" in message
