"""A folder of photos through the whole chain: search (streamed from the image cache), retrain
on train + val, export, and predict on photos of other sizes, preprocessed from the model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..test_trial_cli import automl
from .test_deploy import PLAIN


def _photos(root: Path, per_class: int = 12) -> None:
    """Three learnable classes of 40×32 JPEGs: mostly red, green or blue."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(("red", "green", "blue")):
        for i in range(per_class):
            pixels = rng.integers(0, 80, (32, 40, 3), dtype=np.uint8)
            pixels[..., label] += 150
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / name / f"{i}.jpg", quality=90)


def test_a_photo_folder_is_searched_retrained_exported_and_predicted(tmp_path: Path) -> None:
    _photos(tmp_path / "photos")
    (tmp_path / "space.py").write_text(PLAIN)
    search = automl(
        "search", "space.py", "--data", "photos", "--image-size", "24x30", "--trials", "1",
        "--workers", "1", "--epochs", "2", cwd=tmp_path,
    )  # fmt: skip
    assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-3000:]
    assert "Data photos: 24×30×3, 3 classes" in search.stdout
    assert "test accuracy" in search.stdout  # retrained on train + val and scored
    saved = tmp_path / "runs" / "space" / "dataset.npz"
    assert saved.stat().st_size < 50_000  # references to the image cache, not the pixels
    export = automl("export", "space", "-o", "exported", cwd=tmp_path)
    assert export.returncode == 0, export.stdout[-3000:] + export.stderr[-3000:]
    card = json.loads((tmp_path / "exported" / "model_card.json").read_text())
    assert card["input"]["shape"] == [24, 30, 3]  # predict resizes to this from the card
    big = np.zeros((300, 400, 3), dtype=np.uint8)
    big[..., 2] = 230  # a large blue photo, of another size than the training images
    Image.fromarray(big).save(tmp_path / "big.jpg")
    Image.fromarray(big[:50, :60, 0]).convert("L").save(tmp_path / "small-gray.png")
    predict = automl("predict", "exported", "big.jpg", "small-gray.png", "--json", cwd=tmp_path)
    assert predict.returncode == 0, predict.stdout[-3000:] + predict.stderr[-3000:]
    lines = [json.loads(line) for line in predict.stdout.splitlines() if line.startswith("{")]
    assert [line["file"] for line in lines] == ["big.jpg", "small-gray.png"]
    assert all(line["predictions"][0]["class"] in ("red", "green", "blue") for line in lines)
