"""Commands that ship a model: `export` and `predict`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from automl.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    add_json_argument,
    add_storage_argument,
    cells,
    count_arg,
    print_json,
    storage_url,
)

if TYPE_CHECKING:
    from rich.console import Console


# As automl.deploy.formats.QUANTIZATIONS (not imported here: it imports NumPy at start-up).
QUANTIZATIONS = ("none", "float16", "int8", "int8-full")


def add_export(commands: Any) -> None:
    command = commands.add_parser(
        "export",
        help="export the best model (.keras, SavedModel, TFLite, ONNX) with a model card",
        description=(
            "Export the retrained winner (or, if there is none, the best trial's checkpoint). "
            "Each format is checked against the Keras model; the folder is replaced atomically. "
            "-o must be a new or empty folder, or an earlier export (recognised by its "
            "model_card.json); anything else is refused, untouched."
        ),
    )
    command.add_argument("study", metavar="STUDY", help="the study name")
    command.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        help="the export folder: new, empty, or an earlier export (replaced atomically)",
    )
    add_storage_argument(command)
    command.add_argument(
        "--trial",
        type=count_arg("--trial", minimum=0),
        metavar="N",
        help="export this trial instead of the winner",
    )
    command.add_argument(
        "--format",
        default="keras,savedmodel,tflite",
        metavar="LIST",
        help="comma-separated: keras, savedmodel, tflite, onnx (default keras,savedmodel,tflite)",
    )
    command.add_argument(
        "--quantize",
        default="none",
        choices=QUANTIZATIONS,
        help="TFLite quantization: float16, int8 (weights and activations, float input and "
        "output) or int8-full (int8 input and output too, for microcontrollers and Edge TPU); "
        "int8 calibrates on training images and the card gives its test-accuracy change",
    )
    add_json_argument(command, "the folder, each file and its difference from Keras")
    command.set_defaults(run=run_export)


def run_export(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from automl.deploy import export_study

    result = export_study(
        args.study,
        storage=storage_url(args),
        output=args.output,
        trial=args.trial,
        formats=args.format.split(","),
        quantize=args.quantize,
        on_step=lambda text: console.print(text, markup=False),
    )
    if args.json:
        print_json(
            {
                "study": args.study,
                "directory": str(result.directory.resolve()),
                "trial": result.source.trial,
                "model": result.source.kind,
                "files": dict(result.files),
                "max_abs_difference": dict(result.parity),
                "model_card": str(result.directory.resolve() / "model_card.json"),
                "tflite_quantized_accuracy_change": result.card.get(
                    "tflite_quantized_accuracy_change"
                ),
                "notes": list(result.notes),
            }
        )
        return EXIT_OK
    table = Table(title=f"Export of '{args.study}' → {result.directory}", title_justify="left")
    for column in ("format", "file", "max |difference| vs Keras"):
        table.add_column(column)
    for name, file in result.files.items():
        key = next((k for k in result.parity if k.startswith(name)), name)
        difference = result.parity.get(key)
        table.add_row(*cells(key, file, "-" if difference is None else f"{difference:.2e}"))
    console.print(table)
    change = result.card.get("tflite_quantized_accuracy_change")
    if change:
        console.print(
            f"TFLite {args.quantize}: test accuracy {change['tflite_test_accuracy']:.4f} vs "
            f"Keras {change['keras_test_accuracy']:.4f} (change {change['change']:+.4f})",
            markup=False,
        )
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    console.print(
        f"Model card: {result.directory / 'model_card.json'}; try: automl predict "
        f"{result.directory} some_image.png",
        markup=False,
    )
    return EXIT_OK


def add_predict(commands: Any) -> None:
    command = commands.add_parser(
        "predict",
        help="predict image files with an export",
        description="Preprocess each image as in training (resize, channels) and print its "
        "class and confidence. Unreadable files are reported; the rest are predicted.",
    )
    command.add_argument("directory", metavar="DIR", help="a folder written by automl export")
    command.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    command.add_argument(
        "--top-k",
        type=count_arg("--top-k"),
        default=1,
        metavar="K",
        help="show the K most likely classes (default 1)",
    )
    command.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per image and line on stdout (messages go to stderr)",
    )
    command.add_argument(
        "--backend",
        choices=("keras", "savedmodel", "tflite", "onnx"),
        help="which file of the export to run: keras, savedmodel, tflite (LiteRT's interpreter "
        "when ai-edge-litert is installed) or onnx (onnxruntime) (default: keras, else tflite)",
    )
    command.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace, console: Console) -> int:
    from automl.deploy.predict import Predictor

    predictor = Predictor(args.directory, backend=args.backend)
    failed = False
    for result in predictor.iter_predictions(args.images, top_k=args.top_k):
        failed = failed or result.error is not None
        if args.json:
            payload: dict[str, Any] = {"file": result.path}
            if result.error:
                payload["error"] = result.error
            else:
                payload["predictions"] = [
                    {"class": c, "probability": round(p, 6)} for c, p in result.top
                ]
            print_json(payload)
        elif result.error:
            console.print(f"{result.path}: error: {result.error}", markup=False)
        else:
            shown = ", ".join(f"{c} ({p:.3f})" for c, p in result.top)
            console.print(f"{result.path}: {shown}", markup=False)
    return EXIT_ERROR if failed else EXIT_OK
