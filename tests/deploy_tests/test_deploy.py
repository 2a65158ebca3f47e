"""Retrain, export and predict end to end, on studies made by real (tiny) searches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from automl.cli import main

from ..conftest import REPO
from ..data_tests.lying_images import (
    WARNING_SIDE,
    write_bomb,
    write_not_an_image,
    write_truncated,
)
from ..test_trial_cli import automl

PLAIN = """
import keras
from automl.spaces import zoo

EPOCHS = 2


def build(hp, info):
    inputs = keras.Input(info.input_shape)
    x = zoo.augmentation(inputs, flip="horizontal", rotation=hp.Float("rotation", 0.05, 0.1),
                         zoom=0.1, contrast=0.1)
    x = zoo.conv_stack(zoo.rescale(x), depth=2, filters=hp.Choice("filters", [8, 16]))
    model = keras.Model(inputs, zoo.classifier_head(x, info.num_classes, dense_units=32))
    return zoo.compile_classifier(model, zoo.make_optimizer("adam", 3e-3),
                                  num_classes=info.num_classes)
"""

BACKBONE = """
import keras
from automl.spaces import zoo

EPOCHS = 1


def build(hp, info):
    inputs = keras.Input(info.input_shape)
    x = zoo.augmentation(inputs, flip="horizontal", rotation=0.05, translation=0.1)
    x, _ = zoo.application_backbone(x, "mobilenetv2", alpha=hp.Choice("alpha", [0.35]))
    model = keras.Model(inputs, zoo.classifier_head(x, info.num_classes))
    return zoo.compile_classifier(model, zoo.make_optimizer("adam", 1e-3),
                                  num_classes=info.num_classes)
"""


def _search(folder: Path, space: str, *extra: str) -> None:
    (folder / "space.py").write_text(space)
    result = automl(
        "search", "space.py", "--trials", "1", "--workers", "1", "--json", *extra, cwd=folder
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # --json: stdout is the summary alone; progress, retraining and messages went to stderr.
    summary = json.loads(result.stdout)
    assert summary["study"] == "space" and summary["finished"] == 1
    assert summary["counts"]["complete"] == 1 and summary["best"]["number"] == 0
    assert summary["report"] == str(folder / "runs" / "space" / "report.html")
    assert f"Report: {summary['report']}" in result.stderr


@pytest.fixture(scope="module")
def plain_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A search with a plain CNN trained with augmentation; it ends retrained and reported."""
    folder = tmp_path_factory.mktemp("plain")
    _search(folder, PLAIN)
    return folder


@pytest.fixture(scope="module")
def backbone_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keras.applications backbone with augmentation on 32×32 RGB data (no retrain: the
    export then takes the trial's checkpoint)."""
    folder = tmp_path_factory.mktemp("backbone")
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.integers(0, 60, (90, 32, 32, 3), dtype=np.uint8)
    x[np.arange(90), :, :, y] += 150  # the class shows in one colour channel
    np.savez(folder / "rgb.npz", x_train=x, y_train=y, class_names=np.array(["r", "g", "b"]))
    _search(folder, BACKBONE, "--data", "rgb.npz", "--no-retrain")
    return folder


def _card(folder: Path) -> dict[str, object]:
    return json.loads((folder / "model_card.json").read_text())  # type: ignore[no-any-return]


def test_search_ended_with_a_retrained_winner(plain_study: Path) -> None:
    report = (plain_study / "runs" / "space" / "report.html").read_text()
    assert "Retrained winner" in report and "Not retrained yet" not in report
    # Three seeds, whose spread the report gives as the noise floor.
    retrained = sorted(p.name for p in (plain_study / "runs" / "space" / "retrain").iterdir())
    assert retrained == [f"trial-0-seed-{seed}.keras" for seed in range(3)]
    assert "over 3 seeds" in report and "<th>Noise floor</th>" in report


def test_retrain_top_k_picks_the_best_mean_and_export_takes_it(tmp_path: Path) -> None:
    """`retrain --top-k 2 --seeds 2` retrains the two best trials; the one with the best mean
    test accuracy is the one reports and export use."""
    import re

    (tmp_path / "space.py").write_text(PLAIN.replace("EPOCHS = 2", "EPOCHS = 1"))
    searched = automl(
        "search", "space.py", "--trials", "2", "--workers", "1", "--no-retrain", cwd=tmp_path
    )
    assert searched.returncode == 0, searched.stderr
    result = automl("retrain", "space", "--top-k", "2", "--seeds", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    scores: dict[int, list[float]] = {}
    for trial, accuracy in re.findall(
        r"trial (\d) \(retrain, seed \d\): test accuracy ([0-9.]+)", result.stdout
    ):
        scores.setdefault(int(trial), []).append(float(accuracy))
    assert sorted(scores) == [0, 1] and all(len(v) == 2 for v in scores.values())
    best = max(scores, key=lambda t: sum(scores[t]))
    assert f"Chosen: trial {best}, the best mean test accuracy" in result.stdout
    exported = automl("export", "space", "-o", "out", "--format", "keras", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    card = json.loads((tmp_path / "out" / "model_card.json").read_text())
    assert card["trial"] == best and card["model"] == "retrained"


def test_retrain_seeds_and_checkpoint(
    plain_study: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(plain_study)
    assert main(["retrain", "space", "--seeds", "2", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "trial 0 (retrain, seed 0)" in out and "trial 0 (retrain, seed 1)" in out
    assert main(["retrain", "space", "--from-checkpoint"]) == 0
    assert "trial 0 (checkpoint, seed 0)" in capsys.readouterr().out
    assert main(["retrain", "space", "--from-checkpoint", "--json"]) == 0
    captured = capsys.readouterr()
    (result,) = json.loads(captured.out)
    assert result["trial"] == 0 and result["model"] == "checkpoint"
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0 and result["file"].endswith(".keras")
    assert "trial 0 (checkpoint, seed 0)" in captured.err
    from automl.storage.tables import ResultTables

    tables = ResultTables(f"sqlite:///{plain_study / 'runs' / 'automl.db'}")
    rows = tables.retrains("space")
    tables.close()
    sources = sorted((r.source, r.seed) for r in rows)
    assert sources.count(("retrain", 0)) == 2 and ("checkpoint", 0) in sources
    metrics = rows[0].metrics
    assert {"accuracy", "top5_accuracy", "macro_f1", "confusion_matrix", "per_class"} <= set(
        metrics
    )
    assert len(metrics["per_class"]) == 10


@pytest.fixture(scope="module")
def exported(plain_study: Path) -> Path:
    """The plain study exported once in every format; shared by the tests that read an export."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(plain_study)
        code = main(
            ["export", "space", "-o", "exported", "--format", "keras,savedmodel,tflite,onnx"]
        )
    assert code == 0
    return plain_study / "exported"


def test_export_every_format_of_the_plain_cnn(exported: Path) -> None:
    for name in (
        "model.keras",
        "saved_model",
        "model.tflite",
        "model.onnx",
        "model_card.json",
        "README.md",
    ):
        assert (exported / name).exists(), name
    card = _card(exported)
    assert card["model"] == "retrained"
    parity = card["parity_max_abs_difference"]
    assert isinstance(parity, dict)
    assert set(parity) == {"keras", "savedmodel", "tflite_float32", "onnx"}
    assert all(value <= 1e-4 for value in parity.values())
    config = json.dumps(
        json.loads(
            subprocess.run(
                ["unzip", "-p", str(exported / "model.keras"), "config.json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    )
    assert "RandomRotation" not in config and "augment_" not in config


def test_saved_model_is_in_tf_servings_layout_with_its_serving_signature(exported: Path) -> None:
    """`saved_model/1/` (a numbered version under the base path TF Serving is given), read as
    `saved_model_cli show --all` reads it: the `serving_default` signature takes float32
    `images` of shape (batch, 8, 8, 1) and gives 10 probabilities."""
    import tensorflow as tf

    base = exported / "saved_model"
    assert sorted(p.name for p in base.iterdir()) == ["1"]
    assert (base / "1" / "saved_model.pb").is_file() and (base / "1" / "variables").is_dir()
    assert _card(exported)["files"]["savedmodel"] == "saved_model/"
    signature = tf.saved_model.load(str(base / "1")).signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    assert list(inputs) == ["images"]
    assert inputs["images"].dtype == tf.float32
    assert inputs["images"].shape.as_list() == [None, 8, 8, 1]
    (output,) = signature.structured_outputs.values()
    assert output.dtype == tf.float32 and output.shape.as_list() == [None, 10]
    probabilities = next(iter(signature(images=tf.zeros((2, 8, 8, 1))).values())).numpy()
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_onnx_comes_from_keras_exporter_and_predict_runs_it_with_onnxruntime(
    plain_study: Path,
    exported: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import onnx

    graph = onnx.load(str(exported / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["images"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert not dims[0].dim_value and [d.dim_value for d in dims[1:]] == [8, 8, 1]
    monkeypatch.chdir(plain_study)
    paths = _images(plain_study)[:4]
    capsys.readouterr()
    results = {}
    for backend in ("keras", "onnx", "savedmodel"):
        assert main(["predict", exported.name, *paths, "--json", "--backend", backend]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        results[backend] = [line["predictions"][0] for line in lines]
    for backend in ("onnx", "savedmodel"):
        for ours, keras_ in zip(results[backend], results["keras"], strict=True):
            assert ours["class"] == keras_["class"]
            assert ours["probability"] == pytest.approx(keras_["probability"], abs=1e-4)


def test_export_reloads_in_a_fresh_process_with_safe_mode(
    plain_study: Path, exported: Path
) -> None:
    code = (
        "import sys, numpy as np, keras\n"
        "model = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
        "x = np.load(sys.argv[2])\n"
        "print('SHAPE', model.predict(x, verbose=0).shape)\n"
    )
    sample = plain_study / "sample.npy"
    np.save(sample, np.zeros((3, 8, 8, 1), dtype="float32"))
    result = subprocess.run(
        [sys.executable, "-c", code, str(exported / "model.keras"), str(sample)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert "SHAPE (3, 10)" in result.stdout, result.stderr[-2000:]


def test_int8_export_measures_the_accuracy_change(
    plain_study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(plain_study)
    assert main(["export", "space", "-o", "int8", "--format", "tflite", "--quantize", "int8"]) == 0
    change = _card(plain_study / "int8")["tflite_quantized_accuracy_change"]
    assert isinstance(change, dict)
    assert set(change) == {"keras_test_accuracy", "tflite_test_accuracy", "change"}
    assert change["change"] == pytest.approx(
        change["tflite_test_accuracy"] - change["keras_test_accuracy"]
    )


def test_int8_full_has_int8_input_and_output_and_predicts_through_its_quantization(
    plain_study: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--quantize int8-full (microcontrollers, Edge TPU): int8 tensors in and out, read with
    LiteRT's interpreter; its test-accuracy change is in the card; predict quantizes the
    input and dequantizes the output with the model's own scale and zero point."""
    from ai_edge_litert.interpreter import Interpreter

    monkeypatch.chdir(plain_study)
    command = ["export", "space", "-o", "full", "--format", "tflite", "--quantize", "int8-full"]
    assert main(command) == 0
    interpreter = Interpreter(model_path=str(plain_study / "full" / "model.tflite"))
    interpreter.allocate_tensors()
    entry, exit_ = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert entry["dtype"] == np.int8 and exit_["dtype"] == np.int8
    card = _card(plain_study / "full")
    assert card["tflite_quantization"] == "int8-full"
    change = card["tflite_quantized_accuracy_change"]
    assert isinstance(change, dict) and change["tflite_test_accuracy"] > 0.0
    assert abs(change["change"]) < 0.1  # int8 changes few test answers
    paths = _images(plain_study)[:4]
    capsys.readouterr()
    assert main(["predict", "full", *paths, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for line in lines:
        (top,) = line["predictions"]
        assert 0.0 <= top["probability"] <= 1.01


def test_export_of_a_backbone_trained_with_augmentation(
    backbone_study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(backbone_study)
    assert (
        main(["export", "space", "-o", "exported", "--format", "keras,savedmodel,tflite,onnx"]) == 0
    )
    card = _card(backbone_study / "exported")
    assert card["model"] == "checkpoint"  # no retrain in this study
    parity = card["parity_max_abs_difference"]
    assert isinstance(parity, dict) and len(parity) == 4
    assert all(value <= 1e-4 for value in parity.values()), parity
    assert card["input"] == {
        "shape": [32, 32, 3],
        "dtype": "float32",
        "batch_dimension": "first; TFLite runs one image at a time",
    }


def _images(folder: Path) -> list[str]:
    """PNGs of other sizes and colour modes than training, and one broken file."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    paths = []
    three = (digits.images[3] * 16).astype("uint8")
    for name, image in [
        ("gray-big.png", Image.fromarray(three, "L").resize((64, 64))),
        ("rgb-wide.png", Image.fromarray(three, "L").resize((40, 24)).convert("RGB")),
        ("rgba.png", Image.fromarray(three, "L").resize((16, 16)).convert("RGBA")),
        ("palette.png", Image.fromarray(three, "L").resize((12, 12)).convert("P")),
    ]:
        image.save(folder / name)
        paths.append(str(folder / name))
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    return [*paths, str(folder / "broken.png")]


def test_predict_other_sizes_and_modes(
    plain_study: Path,
    exported: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(plain_study)
    paths = _images(plain_study)
    capsys.readouterr()
    for backend in ("keras", "tflite"):
        assert (
            main(["predict", exported.name, *paths, "--json", "--top-k", "3", "--backend", backend])
            == 1
        )  # one file was bad
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["file"] for line in lines] == paths
        assert lines[-1]["error"].startswith("not a readable image")
        for line in lines[:-1]:
            predictions = line["predictions"]
            assert len(predictions) == 3
            assert predictions[0]["probability"] >= predictions[1]["probability"]
            assert predictions[0]["class"] in [str(i) for i in range(10)]


def test_predict_library_matches_the_cli(plain_study: Path, exported: Path) -> None:
    from automl.deploy import Predictor

    predictor = Predictor(exported)
    paths = _images(plain_study)[:2]
    results = predictor.predict_files(paths, top_k=1)
    assert [r.path for r in results] == paths and all(r.error is None for r in results)


def test_a_file_put_in_the_folder_during_the_export_is_not_deleted(
    plain_study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder is checked again just before the swap: a file the user saved into an earlier
    export while the new one was being written stops the export, and survives."""
    from automl.deploy import export_study
    from automl.errors import UsageError

    monkeypatch.chdir(plain_study)
    assert main(["export", "space", "-o", "again", "--format", "keras"]) == 0
    folder = plain_study / "again"

    def meanwhile(_: str) -> None:
        (folder / "notes.txt").write_text("written during the export")

    before = {**_tree(folder), "notes.txt": b"written during the export"}
    with pytest.raises(UsageError, match=r"not part of its automl export \(notes.txt\)"):
        export_study(
            "space",
            storage="sqlite:///runs/automl.db",
            output="again",
            formats=["keras"],
            on_step=meanwhile,
        )
    assert _tree(folder) == before
    assert not list(plain_study.glob(".*.tmp-*"))


def test_predict_reports_lying_images_per_file(
    plain_study: Path,
    exported: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A decompression bomb, a truncated PNG and text named .jpg are each reported on their
    own line; the good images around them are predicted; the exit code says some failed."""
    monkeypatch.chdir(plain_study)
    good = _images(plain_study)[:2]
    lying = plain_study / "lying"
    paths = [
        good[0],
        str(write_bomb(lying / "bomb.png")),
        str(write_bomb(lying / "warning-bomb.png", WARNING_SIDE)),
        str(write_truncated(lying / "truncated.png")),
        str(write_not_an_image(lying / "notes.jpg")),
        good[1],
    ]
    capsys.readouterr()
    for backend in ("keras", "tflite"):
        assert main(["predict", exported.name, *paths, "--json", "--backend", backend]) == 1
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["file"] for line in lines] == paths
        assert "predictions" in lines[0] and "predictions" in lines[-1]
        for line in lines[1:-1]:
            assert line["error"].startswith("not a readable image"), line
        assert "decompression bomb" in lines[1]["error"]
        assert "decompression bomb" in lines[2]["error"]


def test_predict_in_batches_matches_one_by_one(plain_study: Path, exported: Path) -> None:
    """More images than one batch: the model sees batches no larger than the batch size (so
    memory does not grow with the number of files), and every result is the one the image
    gets on its own."""
    from automl.deploy import Predictor

    folder = plain_study / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(70):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L").save(folder / f"{i}.png")
        paths.append(str(folder / f"{i}.png"))
    (folder / "bad.png").write_bytes(b"not a png")
    paths.insert(33, str(folder / "bad.png"))
    predictor = Predictor(exported)
    seen: list[int] = []
    run = predictor.predict_arrays

    def counting(images: np.ndarray) -> np.ndarray:
        seen.append(len(images))
        return run(images)

    predictor.predict_arrays = counting  # type: ignore[method-assign]
    together = predictor.predict_files(paths, top_k=3)
    assert max(seen) <= 64 and sum(seen) == 70 and len(seen) >= 2
    alone = [predictor.predict_files([path], top_k=3)[0] for path in paths]
    assert [r.path for r in together] == paths
    assert [r.error for r in together] == [r.error for r in alone]
    for batched, single in zip(together, alone, strict=True):
        assert [c for c, _ in batched.top] == [c for c, _ in single.top]
        np.testing.assert_allclose(
            [p for _, p in batched.top], [p for _, p in single.top], atol=1e-5
        )


def test_export_json_is_the_folder_files_and_differences_on_stdout_alone(
    plain_study: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(plain_study)
    capsys.readouterr()
    assert main(["export", "space", "-o", "as-json", "--format", "keras,tflite", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["directory"] == str((plain_study / "as-json").resolve())
    assert set(result["files"]) == {"keras", "tflite"} and result["trial"] == 0
    for file in result["files"].values():
        assert (plain_study / "as-json" / file).exists()
    assert all(0.0 <= d < 1e-3 for d in result["max_abs_difference"].values())
    assert Path(result["model_card"]).is_file() and "Model card" not in captured.out


def test_export_errors(
    plain_study: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(plain_study)
    assert main(["export", "space", "-o", "x", "--format", "jpeg"]) == 2
    assert "unknown or empty" in capsys.readouterr().err
    assert main(["export", "space", "-o", "no/such/parent/x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", "space", "-o", "x", "--trial", "99"]) == 2
    assert "has no trial 99" in capsys.readouterr().err
    assert main(["predict", "runs", "a.png"]) == 2
    assert "not an automl export" in capsys.readouterr().err


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its content (None for a folder), to compare before and
    after. SQLite's own side files come and go with any reader, so they are left out."""
    return {
        str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if not path.name.endswith(("-wal", "-shm", "-journal"))
    }


def _make_keep(study: Path) -> str:
    (study / "keep").mkdir(exist_ok=True)
    (study / "keep" / "important.txt").write_text("x\n")
    return "keep"


def _make_file(study: Path) -> str:
    (study / "notes.txt").write_text("my notes\n")
    return "notes.txt"


def _make_export_with_a_user_file(study: Path) -> str:
    """A copy of a real export's card and README beside the user's own file."""
    folder = study / "export-plus"
    folder.mkdir(exist_ok=True)
    card = {**_card(study / "exported"), "files": {"keras": "model.keras"}}
    (folder / "model_card.json").write_text(json.dumps(card))
    (folder / "README.md").write_text("readme\n")
    (folder / "model.keras").write_bytes(b"model")
    (folder / "important.txt").write_text("x\n")
    return "export-plus"


def _make_foreign_card(study: Path) -> str:
    """A folder with a `model_card.json` that is not ours (another tool's card)."""
    folder = study / "other-card"
    folder.mkdir(exist_ok=True)
    (folder / "model_card.json").write_text(json.dumps({"name": "resnet", "license": "mit"}))
    (folder / "weights.bin").write_bytes(b"weights")
    return "other-card"


def _make_broken_card(study: Path) -> str:
    folder = study / "broken-card"
    folder.mkdir(exist_ok=True)
    (folder / "model_card.json").write_text("{not json")
    return "broken-card"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            _make_keep,
            "-o keep: the folder holds files that are not an automl export (important.txt)",
        ),
        (lambda study: ".", "-o .: is the working folder"),
        (lambda study: "..", "-o ..: holds the working folder"),
        (lambda study: "runs", "-o runs: holds the study store"),
        (lambda study: "runs/space", "-o runs/space: holds the artifacts of study 'space'"),
        (_make_file, "-o notes.txt: is a file"),
        (_make_export_with_a_user_file, "not part of its automl export (important.txt)"),
        (_make_foreign_card, "not an automl export (model_card.json, weights.bin)"),
        (_make_broken_card, "not an automl export (model_card.json)"),
    ],
    ids=["keep", "dot", "parent", "store", "artifacts", "file", "export-plus", "foreign", "broken"],
)
def test_export_refuses_a_folder_that_is_not_an_export(
    plain_study: Path,
    exported: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make: object,
    message: str,
) -> None:
    """Export replaces only a missing or empty folder or an earlier export; anything else is
    refused with one line (exit 2), and nothing is touched: not the folder, not its
    neighbours, no staging folder left behind."""
    monkeypatch.chdir(plain_study)
    assert callable(make)
    output = make(plain_study)
    watched = plain_study.parent if output == ".." else plain_study
    before = _tree(watched)
    capsys.readouterr()
    assert main(["export", "space", "-o", output, "--format", "keras"]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert _tree(watched) == before
    assert not list(plain_study.glob(".*.tmp-*"))


def test_export_into_an_empty_folder(plain_study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(plain_study)
    (plain_study / "empty").mkdir()
    assert main(["export", "space", "-o", "empty", "--format", "keras"]) == 0
    assert set(os.listdir(plain_study / "empty")) == {"model.keras", "model_card.json", "README.md"}
    assert main(["export", "space", "-o", "empty", "--format", "tflite"]) == 0  # an earlier export
    assert set(os.listdir(plain_study / "empty")) == {
        "model.tflite",
        "model_card.json",
        "README.md",
    }


def test_onnx_without_the_extra_says_how_to_get_it(
    plain_study: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(plain_study)
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if the extra were not installed
    assert main(["export", "space", "-o", "no-onnx", "--format", "keras,onnx"]) == 0
    assert "install the onnx extra (pip install 'automl-keras[onnx]')" in capsys.readouterr().out
    assert not (plain_study / "no-onnx" / "model.onnx").exists()


def test_interrupted_export_leaves_the_previous_one(plain_study: Path) -> None:
    """F7: kill -9 an export midway; the destination still holds the previous complete one."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(
        [sys.executable, "-m", "automl", "export", "space", "-o", "atomic", "--format", "keras"],
        cwd=plain_study,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert first.returncode == 0, first.stderr
    before = (plain_study / "atomic" / "model_card.json").read_text()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "automl",
            "export",
            "space",
            "-o",
            "atomic",
            "--format",
            "keras,savedmodel,tflite",
        ],
        cwd=plain_study,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staging = plain_study / f".atomic.tmp-{process.pid}"
    deadline = time.monotonic() + 120
    while not (staging / "new" / "model.keras").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert staging.exists(), "the export never started writing"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (plain_study / "atomic" / "model_card.json").read_text() == before
    assert set(os.listdir(plain_study / "atomic")) == {
        "model.keras",
        "model_card.json",
        "README.md",
    }
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "automl",
            "export",
            "space",
            "-o",
            "atomic",
            "--format",
            "keras,tflite",
        ],
        cwd=plain_study,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert again.returncode == 0, again.stderr
    assert (plain_study / "atomic" / "model.tflite").exists()
    assert not staging.exists()  # the leftover of the killed export is cleaned up


TIED = """
import keras
from automl.spaces import zoo

EPOCHS = 1


def build(hp, info):
    # Zero weights and a zero learning rate: every trial predicts the same class, so every
    # trial ties on val_accuracy and the ranking falls to the smaller model.
    inputs = keras.Input(info.input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(hp.Choice("units", [32, 16, 8, 4]), kernel_initializer="zeros")(x)
    outputs = keras.layers.Dense(info.num_classes, "softmax", kernel_initializer="zeros")(x)
    return zoo.compile_classifier(keras.Model(inputs, outputs),
                                  keras.optimizers.SGD(learning_rate=0.0),
                                  num_classes=info.num_classes)
"""


def test_checkpoint_kept_for_the_winner_among_tied_trials(tmp_path: Path) -> None:
    """With ties on the objective, the checkpoint kept is the one of the trial the study ranks
    first (fewest epochs, then fewest parameters), so `retrain --from-checkpoint` finds it."""
    (tmp_path / "space.py").write_text(TIED)
    search = automl(
        "search", "space.py", "--trials", "4", "--workers", "1", "--sampler", "grid",
        "--pruner", "none", "--keep-checkpoints", "1", "--no-retrain", cwd=tmp_path,
    )  # fmt: skip
    assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-3000:]
    from automl.storage.store import StudyStore

    record = StudyStore(f"sqlite:///{tmp_path / 'runs' / 'automl.db'}").record("space")
    assert len({t.value for t in record.trials}) == 1  # all tied
    winner = record.ranked()[0]
    assert winner.params["units"] == 4 and winner.number != 0  # grid order, seed 0
    kept = list((tmp_path / "runs" / "space" / "checkpoints").glob("*.keras"))
    assert [p.name for p in kept] == [f"trial-{winner.number}.keras"]
    retrain = automl("retrain", "space", "--from-checkpoint", cwd=tmp_path)
    assert retrain.returncode == 0, retrain.stdout[-3000:] + retrain.stderr[-3000:]
    assert f"trial {winner.number} (checkpoint, seed 0)" in retrain.stdout
