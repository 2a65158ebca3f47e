"""The benchmarks' own arithmetic: B2's curves decide whether a target is met."""

from __future__ import annotations

import math
from pathlib import Path

from benchmarks.b2_search_quality import per_epoch_curve, reached


def test_b2_recount_credits_each_epoch_when_it_ends() -> None:
    # Two trials run side by side: a pruned one (1 epoch) and a long one (3 epochs) whose
    # second epoch reaches 0.9 at t = 4 s, long before its trial ends at t = 6 s.
    trials = [
        {"number": 0, "state": "complete", "started": 0.0, "completed": 6.0,
         "intermediate": {"1": 0.5, "2": 0.9, "3": 0.8}},
        {"number": 1, "state": "pruned", "started": 0.0, "completed": 1.0,
         "intermediate": {"1": 0.3}},
        {"number": 2, "state": "running", "started": 5.0, "completed": None,
         "intermediate": {"1": 0.95}},
    ]  # fmt: skip
    curve = per_epoch_curve(trials)
    assert curve == [(1.0, 1, 0.3), (2.0, 2, 0.5), (4.0, 3, 0.9), (6.0, 4, 0.9)]
    assert reached(curve, 0.9) == (4.0, 3)
    assert reached(curve, 0.95) == (None, None)


def test_pruning_analysis_replays_optunas_successive_halving() -> None:
    """The replay decides as Optuna's SuccessiveHalvingPruner (min_resource 1, η = 3): at each
    rung a trial goes on only if it is in the top third of the values seen there so far."""
    from benchmarks.b2_pruning_analysis import analyse, replay, rungs, signal

    def flat(accuracy: float, epochs: int = 9) -> list[dict[str, float]]:
        return [{"val_accuracy": accuracy, "val_loss": 1 - accuracy}] * epochs

    curves = [flat(0.5), flat(0.9), flat(0.4), flat(0.95)]
    assert rungs(9) == [1, 3] and rungs(27) == [1, 3, 9]
    assert replay(curves, lambda c, e: signal("val_accuracy", c, e), 9) == [9, 9, 1, 9]
    late = [{"val_accuracy": a, "val_loss": 1.0} for a in (0.1, 0.2, 0.99)]
    assert signal("smoothed", late, 3) == (0.1 + 0.2 + 0.99) / 3
    assert signal("best_so_far", late, 2) == 0.2 and signal("val_loss", late, 1) == -1.0
    result = analyse(curves, 9)
    assert result["winner"] == 3 and result["signals"]["val_accuracy"]["winner_pruned_at"] is None
    assert result["signals"]["val_accuracy"]["epochs"] == 28


def test_pruning_analysis_cuts_curves_as_early_stopping_does() -> None:
    """Keras's EarlyStopping(patience=p) on validation accuracy stops p epochs after the best;
    the analysis then asks whether the eventual winner was stopped before its best."""
    from benchmarks.b2_pruning_analysis import analyse, early_stop_epoch

    def curve(*accuracies: float) -> list[dict[str, float]]:
        return [{"val_accuracy": a, "val_loss": 1 - a} for a in accuracies]

    # A plateau of 3 epochs, then a late climb to the best at epoch 6.
    late = curve(0.5, 0.6, 0.6, 0.6, 0.6, 0.9, 0.9)
    assert early_stop_epoch(late, 3) == 5 and early_stop_epoch(late, 5) == 7
    assert early_stop_epoch(curve(0.1, 0.2), 1) == 2
    steady = curve(0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7)
    result = analyse([steady, late], 7)
    assert result["winner"] == 1
    assert result["patience"]["3"]["winner_cut_before_best"] is True
    assert result["patience"]["3"]["best_reached_without_pruner"] == 0.7
    assert result["patience"]["5"]["winner_cut_before_best"] is False
    assert result["patience"]["10"]["best_reached_without_pruner"] == 0.9


def test_tpe_parallel_pairs_each_trial_with_the_one_running_beside_it() -> None:
    from datetime import datetime, timedelta

    from pytest import approx

    from automl.spaces.hyperparameters import Kind, ParamSpec
    from automl.storage.records import StudyRecord, TrialRecord, TrialState
    from benchmarks.b2_tpe_parallel import distance, side_by_side

    scales = {
        "lr": ParamSpec("lr", Kind.FLOAT, low=1e-4, high=1e-2, log=True),
        "units": ParamSpec("units", Kind.CHOICE, choices=(0, 64, 128)),
    }
    assert distance({"lr": 1e-3, "units": 64}, {"lr": 1e-3, "units": 64}, scales) == 0.0
    assert distance({"lr": 1e-4, "units": 0}, {"lr": 1e-2, "units": 64}, scales) == 1.0
    assert distance({"lr": 1e-3, "units": 0}, {"lr": 1e-2, "units": 0}, scales) == approx(0.25)

    t0 = datetime(2026, 1, 1)

    def trial(n: int, slot: str, start: int, end: int | None, lr: float) -> TrialRecord:
        return TrialRecord(
            n,
            TrialState.COMPLETE,
            0.5,
            {"lr": lr, "units": 0},
            started=t0 + timedelta(seconds=start),
            completed=t0 + timedelta(seconds=end) if end is not None else None,
            slot=slot,
        )

    record = StudyRecord(
        name="s",
        metric="val_accuracy",
        direction="maximize",
        trials=(
            trial(0, "cpu0", 0, 10, 1e-4),
            trial(1, "cpu1", 0, 4, 1e-2),
            trial(2, "cpu1", 5, 12, 1e-3),  # beside 0 (still running)
            trial(3, "cpu0", 11, 20, 1e-3),  # beside 2
            trial(4, "cpu1", 13, None, 1e-2),  # beside 3
        ),
    )
    pairs = side_by_side(record, scales)
    assert [n for n, _ in pairs] == [1, 2, 3, 4]
    assert [d for _, d in pairs] == approx([0.5, 0.25, 0.0, 0.25])


def test_b2_markdown_gives_per_seed_values_medians_and_the_goals() -> None:
    """The README's B2 tables are printed from the saved runs (`--markdown`), so that what the
    README states is what the JSON holds: per-seed values in seed order, medians, verdicts."""
    from benchmarks.b2_search_quality import markdown

    def arm(best: float, epochs: int, reached: float | None, test: float) -> dict[str, object]:
        return {"final_best": best, "total_epochs": epochs, "reached_seconds": reached,
                "reached_epochs": None if reached is None else epochs // 2,
                "test_accuracy": test, "seconds": 100.0}  # fmt: skip

    runs = [
        {"seed": 0, "arms": {"automl_default": arm(0.98, 300, None, 0.97),
                             "keras_tuner_hyperband": arm(0.99, 375, 90.0, 0.96)}},
        {"seed": 1, "arms": {"automl_default": arm(0.99, 200, 20.0, 0.99),
                             "keras_tuner_hyperband": arm(0.97, 375, None, 0.95)}},
    ]  # fmt: skip
    ratios = {"seconds_ratio": math.inf, "epoch_ratio": math.inf, "final_best": 0.985,
              "best_keras_tuner_final_best": 0.98, "test_accuracy": 0.98,
              "best_keras_tuner_test_accuracy": 0.955}  # fmt: skip
    text = markdown(runs, ratios)
    assert (
        "| automl default (TPE, successive halving, no patience) | 0.9800 / 0.9900 | 0.9850 | "
        "300 / 200 | never / 20 | 0.9700 / 0.9900 | 0.9800 |" in text.splitlines()
    )
    assert "| Keras Tuner Hyperband 27/3 | 0.9900 / 0.9700 | 0.9800 |" in text
    assert (
        "final best at equal wall time 0.9850 against the best Keras Tuner arm's 0.9800 "
        "(goal ≥: **met**)" in text
    )
    assert "not reached at the median" in text
    assert "per seed, time / epochs: never; 0.20× / 0.27×" in text
    assert "test accuracy 0.9800 against 0.9550 (goal ≥: **met**)" in text
    in_time = markdown(runs, {**ratios, "seconds_ratio": 0.25, "epoch_ratio": 0.6})
    assert "0.25× and 0.60× (goal ≤ 0.3× and ≤ 0.5×: **met** and **missed**" in in_time
    # Two decimals would show 0.304 as 0.30, which reads as met.
    just_over = markdown(runs, {**ratios, "seconds_ratio": 0.304, "epoch_ratio": 0.5})
    assert "0.304× and 0.50× (goal ≤ 0.3× and ≤ 0.5×: **missed** and **met**" in just_over


def test_the_first_rung_replay_loses_a_slow_starter_at_epoch_1_and_keeps_it_at_3() -> None:
    from benchmarks.b2_first_rung import epochs_to

    def curve(values: list[float]) -> list[dict[str, float]]:
        return [{"val_accuracy": v, "val_loss": 1 - v} for v in values + [values[-1]] * 27][:27]

    fast = [curve([0.9, 0.92, 0.93]), curve([0.85, 0.9, 0.91]), curve([0.8, 0.88, 0.9])]
    slow = curve([0.1, 0.5, 0.99])  # the pool's best, reached at epoch 3
    pool = [*fast, *fast, slow]
    late = [epochs_to(pool, 0.99, "sha, first rung 3", 400, s) for s in range(10)]
    early = [epochs_to(pool, 0.99, "sha, first rung 1", 400, s) for s in range(10)]
    assert all(spent is not None for spent in late)
    assert sum(spent is None for spent in early) >= 7  # pruned at epoch 1 nearly always
    assert epochs_to(pool, 0.99, "no pruning", 400, 0) is not None


def test_the_first_rung_replay_counts_the_epochs_a_rung_saves() -> None:
    # B3's measure on recorded curves: a later first rung trains more of each trial, and no
    # pruning saves nothing.
    from benchmarks.b2_first_rung import saved

    pool = [
        [{"val_accuracy": 0.5 + 0.4 * i / 9 + 0.001 * e, "val_loss": 1.0} for e in range(27)]
        for i in range(10)
    ]
    fractions = {
        name: saved(pool, name, 60, 0)
        for name in ("sha, first rung 1", "sha, first rung 2", "sha, first rung 3", "no pruning")
    }
    assert fractions["no pruning"] == 0
    assert (
        fractions["sha, first rung 1"]
        > fractions["sha, first rung 2"]
        > fractions["sha, first rung 3"]
        > 0.3
    )


def test_b2_draws_every_arm_and_knows_each_automl_arms_first_rung() -> None:
    """Every arm has a label and a colour; an automl record without a first rung ran with
    rungs from epoch 1, before the rung was recorded."""
    from benchmarks.b2_search_quality import (
        ARM_COLOURS,
        ARM_LABELS,
        ARMS,
        AUTOML_ARMS,
        DEFAULT_AUTOML_ARM,
        automl_settings,
        curves_figure,
    )

    assert set(ARMS) == set(ARM_COLOURS) == set(ARM_LABELS) and set(AUTOML_ARMS) <= set(ARMS)
    arm = {"curve": [(1.0, 1, 0.5)]}
    figure = curves_figure([{"seed": 0, "arms": dict.fromkeys(ARMS, arm)}], "digits")
    assert len(figure.data) == 2 * len(ARMS)
    old = {"sampler": "tpe", "pruner": "sha"}
    assert automl_settings(old) == automl_settings(DEFAULT_AUTOML_ARM) == ("tpe", "sha", 1)
    assert automl_settings({**old, "min_epochs": 3}) == ("tpe", "sha", 3)
    assert AUTOML_ARMS["automl_min_epochs_3"][2] == 3
    assert AUTOML_ARMS["automl_hyperband"][1:] == ("hyperband", None)


def test_b2_automl_arm_records_each_trial_with_what_it_trained(tmp_path: Path) -> None:
    # A real (tiny) run of automl's arm: the trial records carry the parameters and model size,
    # so a seed where TPE drifts to slow configurations shows which ones.
    from benchmarks.b2_search_quality import automl_arm

    from .conftest import REPO

    arm = automl_arm(
        "digits", seed=0, max_epochs=1, seconds=20, sampler="random", pruner="none",
        space_path=REPO / "benchmarks" / "spaces" / "small_cnn.py",
    )  # fmt: skip
    trials = [t for t in arm["trials"] if t["state"] == "complete"]
    assert trials and arm["test_accuracy"] is not None
    for trial in trials:
        assert set(trial["params"]) >= {"blocks", "filters", "dense_units", "dropout"}
        assert trial["params_count"] > 0
    assert arm["min_epochs"] == 1  # the first rung it searched with (the default)
    assert (arm["sampler"], arm["pruner"]) == ("random", "none")


def test_a_backbone_pretrained_here_is_what_the_transfer_space_loads(tmp_path: Path) -> None:
    """Issue 22's transfer-learning space uses a backbone pretrained on this machine (no
    ImageNet download here): the weights the script saves must load into the space's own
    backbone call (same width, same input size), and a missing file must say how to make it."""
    import numpy as np
    import pytest

    from automl.errors import SpaceError
    from automl.spaces import HyperParameters, SpaceInfo, load_space
    from benchmarks import pretrain_backbone
    from benchmarks.common import REPO

    space = load_space(REPO / "benchmarks" / "spaces" / "transfer_local.py")
    space.module.BACKBONES = tmp_path
    mnist_like = SpaceInfo(input_shape=(28, 28, 1), num_classes=10, class_names=tuple("0123456789"))
    with pytest.raises(SpaceError, match=r"pretrain_backbone.py --source digits"):
        space.build_plan(HyperParameters(), mnist_like)

    path = pretrain_backbone.main(
        ["--source", "digits", "--epochs", "1", "--limit", "64", "--out", str(tmp_path)]
    )
    assert path == tmp_path / "mobilenetv2_035_32_digits.weights.h5"
    plan = space.build_plan(HyperParameters(), mnist_like)
    assert plan.fine_tune is not None  # frozen first, then the top layers fine-tuned
    base = plan.fine_tune.base
    assert not base.trainable and base.input.shape[1:] == (32, 32, 3)

    import keras

    saved = keras.applications.MobileNetV2(
        include_top=False, weights=path, input_shape=(32, 32, 3), alpha=0.35
    )
    fresh = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35
    )
    for built, loaded in zip(base.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(built, loaded)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(base.get_weights(), fresh.get_weights(), strict=True)
    )


def test_b2_runs_the_deciding_arms_first_and_resettles_when_a_keras_tuner_arm_is_added() -> None:
    """A seed of the flagship on MNIST-5k takes hours, so B2 saves after each arm and
    `--add-arms` finishes a seed later: the arms that decide a seed's figures run first, and an
    added Keras Tuner arm moves the target every arm is timed to."""
    from benchmarks.b2_search_quality import DEFAULT_ARMS, arm_order, settle_run

    order = arm_order(set(DEFAULT_ARMS))
    assert order[:2] == ["automl_default", "keras_tuner_bayesian"]
    assert sorted(order) == sorted(DEFAULT_ARMS)

    run = {
        "seed": 0,
        "target": None,
        "arms": {
            "keras_tuner_hyperband": {"curve": [(10.0, 3, 0.90), (50.0, 20, 0.95)]},
            "automl_default": {"curve": [(5.0, 2, 0.93), (30.0, 9, 0.96)]},
        },
    }
    settle_run(run)
    assert run["target"] == 0.95
    assert run["arms"]["automl_default"]["reached_seconds"] == 30.0
    run["arms"]["keras_tuner_bayesian"] = {"curve": [(40.0, 27, 0.97)]}
    settle_run(run)
    assert run["target"] == 0.97
    assert run["arms"]["automl_default"]["reached_seconds"] is None
    assert run["arms"]["keras_tuner_bayesian"]["reached_seconds"] == 40.0


def test_val_vs_test_counts_each_arm_pair_by_its_validation_gap(tmp_path: Path) -> None:
    """`b2_val_vs_test` sorts arm pairs by how many validation images apart they are and counts
    whether the winners' test accuracy orders them the same way; equal validation is no pair."""
    import json

    from benchmarks.b2_val_vs_test import compare

    def arm(val: int, test: int) -> dict[str, float]:
        return {"final_best": val / 1000, "test_accuracy": test / 1000}

    saved = {"data": "mnist5k", "runs": [
        {"seed": 0, "arms": {"a": arm(990, 980), "b": arm(989, 985), "c": arm(985, 970),
                             "d": arm(990, 960), "unfinished": {"final_best": None}}},
    ]}  # fmt: skip
    path = tmp_path / "b2_search_quality_x.json"
    path.write_text(json.dumps(saved))
    per_cell, by_gap = compare([path])
    # a–b and d–b are 1 image apart: b tests higher than both (disagree twice);
    # a–c and d–c are 5 apart: a agrees, d disagrees; b–c is 4 apart: agrees; a–d is no pair.
    assert by_gap[0][:5] == ["1", 2, 0, 2, 0]
    assert by_gap[2][:5] == ["3–4", 1, 1, 0, 0]
    assert by_gap[3][:5] == ["≥ 5", 2, 1, 1, 0]
    assert per_cell[0][:2] == ["x", 1]
    assert per_cell[0][3] == "3.1"  # sqrt(0.99 × 0.01 × 1000) images
