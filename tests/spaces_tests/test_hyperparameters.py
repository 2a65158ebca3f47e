"""The `hp` object: definitions, validation, conditions and replays (no Keras needed)."""

from __future__ import annotations

import math

import pytest

from automl.errors import AutoMLError, SpaceError
from automl.spaces import (
    FixedAnswers,
    HyperParameters,
    Kind,
    ParamSpec,
    RandomAnswers,
    explore_space,
)


def test_defaults_follow_keras_tuner() -> None:
    hp = HyperParameters()
    assert hp.Int("units", 32, 512, step=32) == 32
    assert hp.Float("lr", 1e-4, 1e-2, sampling="log") == pytest.approx(1e-4)
    assert hp.Choice("act", ["relu", "tanh"]) == "relu"
    assert hp.Boolean("bn") is False
    assert hp.Fixed("classes", 10) == 10
    assert hp.Int("depth", 1, 4, default=3) == 3
    assert hp.values == {
        "units": 32,
        "lr": 1e-4,
        "act": "relu",
        "bn": False,
        "classes": 10,
        "depth": 3,
    }


def test_repeated_call_returns_the_same_value() -> None:
    hp = HyperParameters(RandomAnswers(seed=3))
    first = hp.Float("dropout", 0.0, 0.5)
    for _ in range(5):
        assert hp.Float("dropout", 0.0, 0.5) == first
    assert len(hp.space) == 1


def test_name_reused_with_another_type_or_range_is_an_error() -> None:
    hp = HyperParameters()
    hp.Int("units", 8, 64)
    with pytest.raises(SpaceError, match=r"'units' is defined again as Float .* was Int"):
        hp.Float("units", 8.0, 64.0)
    with pytest.raises(SpaceError, match=r"defined again as Int \[8, 128\]"):
        hp.Int("units", 8, 128)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda hp: hp.Int("a", 5, 1), r"`min_value <= max_value` must hold.*min_value=5"),
        (lambda hp: hp.Float("a", 0.0, 1.0, sampling="log"), r"sampling='log' needs min_value > 0"),
        (lambda hp: hp.Int("a", -3, 10, sampling="log"), r"sampling='log' needs min_value > 0"),
        (lambda hp: hp.Choice("a", []), r"Choice 'a' has no values"),
        (lambda hp: hp.Int("a", 1, 4, step=10), r"step=10 is larger than the range \[1, 4\]"),
        (lambda hp: hp.Float("a", 0.1, 0.2, step=0.5), r"step=0.5 is larger than the range"),
        (lambda hp: hp.Choice("a", [[1, 2], [3]]), r"values must be int, float, str or bool"),
        (lambda hp: hp.Choice("a", [object()]), r"of type object"),
        (lambda hp: hp.Choice("a", [1, "two"]), r"mixes value types"),
        (lambda hp: hp.Choice("a", [1, 2], default=3), r"default 3 outside its values"),
        (lambda hp: hp.Int("a", 1, 4, default=9), r"default 9 outside"),
        (lambda hp: hp.Int("a", 1.5, 4), r"needs an integer min_value"),
        (lambda hp: hp.Float("a", 1, 2, sampling="cubic"), r"use sampling='linear', 'log' or"),
        (lambda hp: hp.Choice("a", ["x", "y"], ordered=True), r"ordered=True .* not numbers"),
        (lambda hp: hp.Int("a", 1, 100, step=1, sampling="log"), r"greater than 1"),
    ],
)
def test_invalid_definitions_name_the_line(call: object, message: str) -> None:
    hp = HyperParameters()
    with pytest.raises(SpaceError, match=message) as caught:
        call(hp)  # type: ignore[operator]
    # The message starts with the file:line of the hp call, here this test file.
    assert str(caught.value).startswith("tests/spaces_tests/test_hyperparameters.py:") or (
        "test_hyperparameters.py:" in str(caught.value).split(" ")[0]
    )


def test_keras_tuner_reverse_log_sampling_is_accepted_and_searched_linearly() -> None:
    from automl.spaces.replay import RandomAnswers

    values = []
    for seed in range(20):
        hp = HyperParameters(RandomAnswers(seed))
        values.append(hp.Float("momentum", 0.5, 0.999, sampling="reverse_log"))
        assert hp.Int("units", 8, 64, sampling="reverse_log", default=8) in range(8, 65)
    assert all(0.5 <= v <= 0.999 for v in values) and len(set(values)) > 10
    assert HyperParameters().Float("m", 0.5, 0.999, sampling="reverse_log") == 0.5  # default


def test_fixed_inside_a_conditional_scope_as_keras_tuner() -> None:
    for branch, expected in (("a", 3), ("b", None)):
        hp = HyperParameters(FixedAnswers({"m": branch}))
        hp.Choice("m", ["a", "b"])
        with hp.conditional_scope("m", "a"):
            assert hp.Fixed("f", 3) == expected
        assert hp.values == ({"m": "a", "f": 3} if expected else {"m": "b"})


def test_conditional_scope_keras_tuner_semantics() -> None:
    hp = HyperParameters()
    model_type = hp.Choice("model_type", ["mlp", "cnn"])
    with hp.conditional_scope("model_type", ["mlp"]):
        units = hp.Int("units", 8, 64, default=16)
    with hp.conditional_scope("model_type", "cnn"):
        filters = hp.Int("filters", 8, 64)
    assert model_type == "mlp"
    assert units == 16
    assert filters is None  # inactive: None, as in Keras Tuner
    assert "filters" not in hp and "units" in hp
    # Keras Tuner raises ValueError and KeyError here; ours are those and AutoMLErrors too.
    with pytest.raises(ValueError, match="inactive") as inactive:
        hp.get("filters")
    with pytest.raises(KeyError) as unknown:
        hp.get("nothing")
    assert isinstance(inactive.value, AutoMLError) and isinstance(unknown.value, AutoMLError)
    assert str(unknown.value) == "nothing does not exist."
    specs = {s.name: s for s in hp.space}
    assert specs["filters"].conditions[0].describe() == "model_type in [cnn]"


def test_parent_name_keyword_and_undefined_parent() -> None:
    hp = HyperParameters(FixedAnswers({"kind": "b", "size": 3}, missing="default"))
    hp.Choice("kind", ["a", "b"])
    assert hp.Int("size", 1, 4, parent_name="kind", parent_values=["b"]) == 3
    scope = hp.conditional_scope("ghost", ["x"])
    with pytest.raises(SpaceError, match=r"'ghost'.* not defined yet"):
        scope.__enter__()


def test_grid_and_contains() -> None:
    log_int = ParamSpec("b", Kind.INT, low=2, high=32, step=2, log=True)
    assert log_int.grid() == (2, 4, 8, 16, 32)
    stepped = ParamSpec("d", Kind.FLOAT, low=0.0, high=0.5, step=0.1)
    assert stepped.grid() == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    assert stepped.contains(0.3) and not stepped.contains(0.25)
    continuous = ParamSpec("lr", Kind.FLOAT, low=1e-4, high=1e-1, log=True)
    assert continuous.grid() is None
    assert continuous.contains(0.01) and not continuous.contains(0.5)
    choice = ParamSpec("c", Kind.CHOICE, choices=(1, 2))
    assert choice.contains(1) and not choice.contains(True)


def test_fixed_replay_answers_from_stored_values() -> None:
    def build(hp: HyperParameters) -> list[object]:
        kind = hp.Choice("kind", ["a", "b"])
        with hp.conditional_scope("kind", ["b"]):
            size = hp.Int("size", 1, 4)
        return [kind, size, hp.Float("lr", 1e-3, 1e-1, sampling="log")]

    assert build(HyperParameters(FixedAnswers({"kind": "b", "size": 4, "lr": 0.05}))) == [
        "b",
        4,
        0.05,
    ]
    with pytest.raises(SpaceError, match="'lr' has no value in the stored values"):
        build(HyperParameters(FixedAnswers({"kind": "a"})))
    with pytest.raises(SpaceError, match=r"value 9 given for 'size' is not in Int \[1, 4\]"):
        build(HyperParameters(FixedAnswers({"kind": "b", "size": 9, "lr": 0.05})))


def test_random_replay_is_seeded_and_in_range() -> None:
    def sample(seed: int) -> dict[str, object]:
        hp = HyperParameters(RandomAnswers(seed))
        hp.Int("n", 1, 10)
        hp.Float("lr", 1e-5, 1e-1, sampling="log")
        hp.Float("d", 0.0, 0.5, step=0.1)
        hp.Int("u", 16, 256, step=2, sampling="log")
        hp.Choice("o", ["adam", "sgd"])
        return hp.values

    assert sample(1) == sample(1)
    seen = [sample(seed) for seed in range(40)]
    assert len({s["n"] for s in seen}) > 3
    for values in seen:
        assert 1 <= values["n"] <= 10
        assert 1e-5 <= values["lr"] <= 1e-1  # type: ignore[operator]
        assert values["u"] in (16, 32, 64, 128, 256)
        assert math.isclose(values["d"] * 10, round(values["d"] * 10))  # type: ignore[operator]


def test_explore_visits_every_branch() -> None:
    def build(hp: HyperParameters) -> None:
        backbone = hp.Choice("backbone", ["conv", "resnet", "mlp"])
        with hp.conditional_scope("backbone", ["conv"]):
            if backbone == "conv":
                hp.Int("depth", 1, 4)
        with hp.conditional_scope("backbone", ["resnet"]):
            if backbone == "resnet":
                use_se = hp.Boolean("use_se")
                with hp.conditional_scope("use_se", [True]):
                    if use_se:
                        hp.Float("se_ratio", 0.1, 0.5)
        hp.Float("lr", 1e-4, 1e-1, sampling="log")

    found = explore_space(build)
    names = [spec.name for spec in found.specs]
    assert names == ["backbone", "depth", "lr", "use_se", "se_ratio"]
    se = next(s for s in found.specs if s.name == "se_ratio")
    assert [c.describe() for c in se.conditions] == ["backbone in [resnet]", "use_se in [True]"]


def test_spec_round_trips_through_json() -> None:
    hp = HyperParameters()
    hp.Choice("k", ["a", "b"])
    with hp.conditional_scope("k", ["a"]):
        hp.Float("x", 0.1, 1.0, step=0.1, default=0.5)
    for spec in hp.space:
        assert ParamSpec.from_dict(spec.to_dict()) == spec
