"""Space files: their contract, and every mistake as exit 2 with `file:line` and a fix."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from automl.cli import main
from automl.errors import SpaceError
from automl.spaces import HyperParameters, Objective, SpaceInfo, load_space, read_space_settings

INFO = SpaceInfo((8, 8, 1), 3, ("a", "b", "c"))

GOOD = """
import keras

OBJECTIVE = ("val_loss", "minimize")
DATA = "digits"
EPOCHS = 3


def build(hp, info):
    inputs = keras.Input(info.input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(hp.Int("units", 4, 16, default=8), activation="relu")(x)
    outputs = keras.layers.Dense(info.num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""


def test_settings_are_read_without_running_the_file(write_space: Callable[..., Path]) -> None:
    path = write_space(GOOD + "\nraise RuntimeError('never executed')\n")
    settings = read_space_settings(path)
    assert settings.objective == Objective("val_loss", "minimize")
    assert settings.data == "digits"
    assert settings.epochs == 3
    assert len(settings.sha256) == 64


def test_good_space_builds_with_info(write_space: Callable[..., Path], tf: object) -> None:
    space = load_space(write_space(GOOD))
    hp = HyperParameters()
    model = space.build(hp, INFO)
    assert model.output_shape == (None, 3)
    assert hp.values == {"units": 8}


def test_objective_forms() -> None:
    assert Objective.parse("val_loss") == Objective("val_loss", "minimize")
    assert Objective.parse("val_accuracy") == Objective("val_accuracy", "maximize")
    assert Objective.parse("val_auc:max") == Objective("val_auc", "maximize")
    assert Objective.parse({"metric": "loss", "direction": "min"}).direction == "minimize"
    with pytest.raises(SpaceError, match="direction must be 'maximize' or 'minimize'"):
        Objective.parse(("val_accuracy", "up"))


def test_keras_tuner_objective_is_read(write_space: Callable[..., Path]) -> None:
    path = write_space(
        'import keras_tuner\nOBJECTIVE = keras_tuner.Objective("val_auc", direction="max")\n'
        "def build(hp):\n    pass\n"
    )
    assert read_space_settings(path).objective == Objective("val_auc", "maximize")


BAD_SPACES = [
    pytest.param("def build(hp)\n    return 1\n", 1, "syntax error", id="syntax-error"),
    pytest.param(
        "import os\nimport not_a_module_xyz\n\ndef build(hp):\n    pass\n",
        2,
        "ModuleNotFoundError: No module named 'not_a_module_xyz'; install the missing package",
        id="import-error",
    ),
    pytest.param(
        "x = 1\nraise ValueError('boom')\n", 2, "ValueError while loading", id="error-on-load"
    ),
    pytest.param(
        "import keras\n\ndef model(hp):\n    pass\n", 1, "defines no build(hp)", id="missing-build"
    ),
    pytest.param(
        "import keras\n\n\ndef build(hp):\n    return 'a model'\n",
        4,
        "must return a compiled keras.Model, got str",
        id="wrong-return-type",
    ),
    pytest.param(
        "import keras\n\n\ndef build(hp):\n"
        "    inputs = keras.Input((8, 8, 1))\n"
        "    return keras.Model(inputs, keras.layers.Flatten()(inputs))\n",
        4,
        "not compiled; call model.compile",
        id="not-compiled",
    ),
    pytest.param(
        "import keras\n\n\ndef build(hp):\n"
        "    inputs = keras.Input((8, 8, 1))\n"
        "    x = keras.layers.Lambda(lambda t: t * 2)(inputs)\n"
        "    x = keras.layers.Flatten()(x)\n"
        "    model = keras.Model(inputs, keras.layers.Dense(3)(x))\n"
        "    model.compile('adam', 'mse')\n"
        "    return model\n",
        4,
        "Lambda layer",
        id="lambda-layer",
    ),
    pytest.param(
        "import keras\n\n\ndef build(hp):\n    units = hp.Int('units', 10, 2)\n    return None\n",
        5,
        "`min_value <= max_value` must hold",
        id="invalid-parameter",
    ),
    pytest.param(
        "import keras\n\n\ndef build(hp):\n    x = 1\n    return {}['missing']\n",
        6,
        "build() raised KeyError",
        id="exception-in-build",
    ),
    pytest.param(
        "import keras\n\n\ndef build(hp):\n    hp.Int('a', 1, 3)\n    hp.Float('a', 1, 3)\n",
        6,
        "'a' is defined again as Float",
        id="name-reused",
    ),
    pytest.param(
        "OBJECTIVE = make_objective()\ndef build(hp):\n    pass\n",
        1,
        "OBJECTIVE must be a literal",
        id="objective-not-literal",
    ),
    pytest.param(
        "EPOCHS = 0\ndef build(hp):\n    pass\n",
        1,
        "EPOCHS must be a positive integer",
        id="bad-epochs",
    ),
    pytest.param(
        "def build(hp, info, extra):\n    pass\n",
        1,
        "takes 3 positional arguments",
        id="build-signature",
    ),
    pytest.param(
        "import keras\nfrom automl.spaces import zoo\n\n\ndef build(hp):\n"
        "    inputs = keras.Input((8, 8, 1))\n"
        "    optimizer = zoo.make_optimizer('adagrad', 0.1)\n",
        7,
        "unknown optimizer 'adagrad'; use one of adam",
        id="zoo-error",
    ),
    pytest.param(
        "import keras\nfrom automl.spaces import TrainingPlan\n\n\ndef build(hp):\n"
        "    inputs = keras.Input((8, 8, 1))\n"
        "    return TrainingPlan(keras.Model(inputs, keras.layers.Flatten()(inputs)))\n",
        5,
        "not compiled; call model.compile",
        id="plan-not-compiled",
    ),
    pytest.param(
        "import keras\nfrom automl.spaces import TrainingPlan\n\n\ndef build(hp):\n"
        "    return TrainingPlan('a model')\n",
        5,
        "must return a compiled keras.Model, got a TrainingPlan of str",
        id="plan-of-no-model",
    ),
    pytest.param(
        "import keras\nfrom automl.spaces import TrainingPlan\n\n\ndef build(hp):\n"
        "    inputs = keras.Input((8, 8, 1))\n"
        "    model = keras.Model(inputs, keras.layers.Flatten()(inputs))\n"
        "    model.compile('adam', 'mse')\n"
        "    return TrainingPlan(model, callbacks=['early stopping'])\n",
        5,
        "callbacks must be keras.callbacks.Callback objects, got str",
        id="plan-bad-callback",
    ),
    pytest.param(
        "import keras\nfrom automl.spaces import zoo\n\n\ndef build(hp):\n"
        "    inputs = keras.Input((8, 8, 1))\n"
        "    model = keras.Model(inputs, keras.layers.Flatten()(inputs))\n"
        "    model.compile('adam', 'mse')\n"
        "    zoo.reduce_on_plateau(model)  # the plan it returns is dropped\n"
        "    return model\n",
        5,
        "build() made a TrainingPlan for its model (zoo.fine_tune, zoo.add_callbacks or "
        "zoo.reduce_on_plateau) but returned the bare model",
        id="plan-made-but-model-returned",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_SPACES)
def test_bad_space_exits_2_with_file_and_line(
    write_space: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    text: str,
    line: int,
    message: str,
    tf: object,
) -> None:
    path = write_space(text, name="bad_space.py")
    code = main(["check", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no traceback
    assert re.search(rf"bad_space\.py:{line}\b", lines[0]), lines[0]
    assert message in lines[0]
    assert "Traceback" not in err


def test_missing_space_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "nope/space.py"]) == 2
    assert "nope/space.py: no such space file" in capsys.readouterr().err


def test_debug_shows_the_traceback(write_space: Callable[..., Path]) -> None:
    path = write_space("def build(hp)\n", name="bad_space.py")
    with pytest.raises(SpaceError):
        main(["--debug", "check", str(path)])


def test_hypermodel_instance_is_accepted(write_space: Callable[..., Path], tf: object) -> None:
    path = write_space(
        """
        import keras
        import keras_tuner


        class Tiny(keras_tuner.HyperModel):
            def build(self, hp):
                inputs = keras.Input((8, 8, 1))
                x = keras.layers.Flatten()(inputs)
                outputs = keras.layers.Dense(hp.Choice("units", [3]), activation="softmax")(x)
                model = keras.Model(inputs, outputs)
                model.compile("sgd", "sparse_categorical_crossentropy")
                return model

            def fit(self, hp, model, *args, **kwargs):
                return model.fit(*args, **kwargs)
        """
    )
    space = load_space(path)
    assert space.fit_fn is not None
    assert space.build(HyperParameters(), INFO).output_shape == (None, 3)


def test_a_training_plan_is_accepted(write_space: Callable[..., Path], tf: object) -> None:
    path = write_space(
        """
        import keras
        from automl.spaces import FineTune, TrainingPlan

        STOP = keras.callbacks.EarlyStopping(monitor="loss")


        def build(hp):
            inputs = keras.Input((8, 8, 1))
            base = keras.Sequential([keras.layers.Conv2D(2, 3)], name="base")
            x = keras.layers.Flatten()(base(inputs))
            model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
            model.compile("sgd", "sparse_categorical_crossentropy")
            return TrainingPlan(model, [STOP], FineTune(base, layers=1))
        """
    )
    space = load_space(path)
    plan = space.build_plan(HyperParameters(), INFO)
    assert plan.callbacks == (space.module.STOP,)
    assert plan.fine_tune is not None and plan.fine_tune.base is plan.model.get_layer("base")
    assert space.build(HyperParameters(), INFO).output_shape == (None, 3)  # the model alone


def test_a_bare_model_is_a_plan_of_one_phase(write_space: Callable[..., Path], tf: object) -> None:
    path = write_space(
        """
        import keras


        def build(hp):
            inputs = keras.Input((8, 8, 1))
            model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
            model.compile("sgd", "mse")
            return model
        """
    )
    plan = load_space(path).build_plan(HyperParameters(), INFO)
    assert plan.callbacks == () and plan.fine_tune is None
    assert plan.model.output_shape == (None, 3)
