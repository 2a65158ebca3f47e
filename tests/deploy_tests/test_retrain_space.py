"""Retraining runs a space file only after checking its hash against the study's: the store says
which file the search used, and a store shared with others must not choose which local file
runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.cli import main
from automl.search import SearchConfig, run_search
from automl.storage import attributes as keys
from automl.storage.store import StudyStore

from ..search_tests.test_search import SPACE, fake_gpus

PLANTED = """
from pathlib import Path

Path({marker!r}).write_text("this file ran")


def build(hp):
    return [0.0]
"""


@pytest.mark.parametrize("how", ["stored path", "--space"])
def test_retrain_refuses_a_space_file_with_another_hash_without_running_it(
    how: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOML_STORAGE", raising=False)
    # The refusal comes before any model is built: TensorFlow is not needed to show it.
    monkeypatch.setattr("automl.tfruntime.import_tensorflow", lambda **_: None)
    (tmp_path / "space.py").write_text(SPACE.read_text())
    config = SearchConfig(space="space.py", trials=1, executor="function", epochs=2, workers=1)
    run_search(config, gpu_probe=fake_gpus(0), cpus=1)

    marker = tmp_path / "marker"
    planted = tmp_path / "planted.py"
    planted.write_text(PLANTED.format(marker=str(marker)))
    argv = ["retrain", "space"]
    if how == "stored path":
        # What a shared store could do: point the study's space at another file.
        store = StudyStore(f"sqlite:///{tmp_path / 'runs' / 'automl.db'}")
        study_id = store.storage.get_study_id_from_name("space")
        space = keys.SpaceProvenance.from_json(
            store.storage.get_study_user_attrs(study_id)[keys.SPACE]
        )
        moved = keys.SpaceProvenance(path=str(planted), sha256=space.sha256, source=space.source)
        store.storage.set_study_user_attr(study_id, keys.SPACE, moved.to_json())
    else:
        argv += ["--space", str(planted)]
    capsys.readouterr()

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the space file changed since study 'space' was searched" in err
    assert "planted.py" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists(), "retrain ran the space file before checking its hash"
