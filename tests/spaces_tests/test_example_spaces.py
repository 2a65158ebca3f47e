"""Every file in spaces/ is smoke-tested: `automl check`, then a one-epoch trial on digits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..conftest import SPACES
from ..test_trial_cli import automl

SPACE_FILES = sorted(p.name for p in SPACES.glob("*.py"))


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Keras cache holding the MobileNetV2 'imagenet' weights file, written here (offline)."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    home = tmp_path_factory.mktemp("keras_home")
    model = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = home / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    return home


def test_every_space_file_is_listed() -> None:
    assert {"cnn.py", "transfer.py", "keras_tuner_style.py"} <= set(SPACE_FILES)


@pytest.mark.parametrize("name", SPACE_FILES)
def test_space_checks_and_trains_one_epoch(name: str, keras_home: Path, tf: object) -> None:
    env = {"KERAS_HOME": str(keras_home), "https_proxy": "http://127.0.0.1:9"}
    checked = automl("check", f"spaces/{name}", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "parameters" in checked.stdout and "Default model" in checked.stdout
    trained = automl("trial", f"spaces/{name}", "--epochs", "1", env=env)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr
    assert "Best val_accuracy" in trained.stdout
    assert os.path.isdir(keras_home)
