"""The export formats: `.keras`, SavedModel, TFLite and ONNX, each one small object.

A format writes its file into an export folder, loads it back from there and runs it on a batch
of images. Export writes every chosen format and checks it against the Keras model through
`load` and `run`; predict runs an export through the same objects, so what export checked is
what predict runs. `FORMATS` maps each name (as `--format` and `model_card.json` spell it) to
its format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from automl.errors import ExportError

if TYPE_CHECKING:
    from automl.data.dataset import Dataset

QUANTIZATIONS = ("none", "float16", "int8", "int8-full")
CALIBRATION_IMAGES = 200
ONNX_OPSET = 17
SAVED_MODEL = "saved_model"  # TF Serving's model base path; TFLite is converted from it
SAVED_MODEL_VERSION = "1"  # TF Serving loads numbered version folders under the base path


@dataclass(frozen=True)
class WriteRequest:
    """What a format needs to write itself.

    Attributes:
        model: the inference Keras model (augmentation layers already removed).
        folder: the export folder being filled.
        dataset: the study's data (input shape; training images to calibrate int8).
        quantize: TFLite quantization: `none` (float32), `float16`, `int8` (float input
            and output) or `int8-full` (int8 input and output too).
    """

    model: Any
    folder: Path
    dataset: Dataset
    quantize: str = "none"


@dataclass(frozen=True)
class Written:
    """What a format wrote, as export reports it.

    Attributes:
        file: its name in the export folder as the model card lists it (`saved_model/`).
        parity_key: its key in the card's parity table (`keras`, `tflite_int8`, …).
        exact: whether its outputs must match Keras within the float tolerance; quantized
            outputs are only measured.
        detail: shown after "written" in export's progress line.
    """

    file: str
    parity_key: str
    exact: bool = True
    detail: str = ""


class FormatUnavailable(ExportError):
    """A format whose optional dependencies are not installed; export goes on without it."""


class Format(Protocol):
    """One export format."""

    @property
    def name(self) -> str:
        """The name `--format` and `model_card.json` use."""
        ...

    def write(self, request: WriteRequest) -> Written:
        """Write the format into `request.folder`.

        Raises:
            FormatUnavailable: its optional dependencies are not installed.
        """
        ...

    def load(self, folder: Path) -> Any:
        """Load what `write` put in the export folder `folder`, ready to `run`."""
        ...

    def run(self, loaded: Any, x: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of float32 images."""
        ...

    def usage(self, card: Mapping[str, Any]) -> list[str]:
        """Lines of the export README that show how to load and run the format."""
        ...


class KerasFormat:
    """`model.keras`, loadable with `safe_mode=True`."""

    name = "keras"
    file = "model.keras"

    def write(self, request: WriteRequest) -> Written:
        request.model.save(request.folder / self.file)
        return Written(self.file, self.name)

    def load(self, folder: Path) -> Any:
        import keras

        return keras.saving.load_model(folder / self.file, safe_mode=True)

    def run(self, loaded: Any, x: np.ndarray) -> np.ndarray:
        # One batch (Predictor sends at most 64 images): predict_on_batch skips the dataset
        # `predict` builds per call, ~50 ms of a served request for a small model. Batches are
        # padded to a power of two: each new batch size traces the model again (~0.2 s), so a
        # server sees at most 7 sizes, not 64.
        count = len(x)
        size = 1 << max(0, count - 1).bit_length()
        if size != count:
            x = np.concatenate([x, np.zeros((size - count, *x.shape[1:]), dtype=x.dtype)])
        return np.asarray(loaded.predict_on_batch(x))[:count]

    def usage(self, card: Mapping[str, Any]) -> list[str]:
        return [
            "## model.keras",
            "```python",
            "import keras",
            'model = keras.saving.load_model("model.keras", safe_mode=True)',
            "probabilities = model.predict(images)",
            "```",
            "",
        ]


class SavedModelFormat:
    """`saved_model/` in the TensorFlow Serving layout, signature `serve` on raw images."""

    name = "savedmodel"

    def write(self, request: WriteRequest) -> Written:
        _saved_model(request)
        return Written(f"{SAVED_MODEL}/", self.name, detail=" (signature 'serve')")

    def load(self, folder: Path) -> Any:
        import tensorflow as tf

        return tf.saved_model.load(str(saved_model_path(folder)))

    def run(self, loaded: Any, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return np.asarray(loaded.serve(tf.constant(x)))

    def usage(self, card: Mapping[str, Any]) -> list[str]:
        return [
            "## saved_model/ (TensorFlow Serving)",
            "In TensorFlow Serving's layout: `saved_model/1/` is version 1 of the model; serve",
            "it with `--model_base_path=$PWD/saved_model` (signature `serving_default`, input",
            "`images`: float32 pixels of shape (batch, height, width, channels)).",
            "```python",
            "import tensorflow as tf",
            'model = tf.saved_model.load("saved_model/1")',
            "probabilities = model.serve(tf.constant(images))",
            "```",
            "",
        ]


class TFLiteFormat:
    """`model.tflite`: float32, float16, or int8 calibrated on training images. Its batch
    dimension is fixed to 1, so it runs one image at a time."""

    name = "tflite"
    file = "model.tflite"

    def write(self, request: WriteRequest) -> Written:
        content = _convert_to_tflite(_saved_model(request), request)
        (request.folder / self.file).write_bytes(content)
        kind = tflite_kind(request.quantize)
        return Written(self.file, f"tflite_{kind}", exact=kind == "float32", detail=f" ({kind})")

    def load(self, folder: Path) -> Any:
        """An allocated interpreter: LiteRT's when installed, else TensorFlow's (whose
        deprecation warning and delegate chatter are kept off the terminal)."""
        import warnings

        from automl.tfruntime import quiet_stderr

        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        content = (folder / self.file).read_bytes()
        with warnings.catch_warnings(), quiet_stderr(enabled=True):
            warnings.simplefilter("ignore")
            interpreter = Interpreter(model_content=content)
            interpreter.allocate_tensors()
        return interpreter

    def run(self, loaded: Any, x: np.ndarray) -> np.ndarray:
        """Float32 images in, float32 probabilities out; an int8-full model's int8 input is
        quantized and its int8 output dequantized with the model's own scale and zero point."""
        entry = loaded.get_input_details()[0]
        exit_ = loaded.get_output_details()[0]
        outputs = []
        for image in x:
            loaded.set_tensor(entry["index"], _quantized(image[np.newaxis], entry))
            loaded.invoke()
            outputs.append(_dequantized(loaded.get_tensor(exit_["index"])[0], exit_))
        return np.asarray(outputs, dtype="float32")

    def usage(self, card: Mapping[str, Any]) -> list[str]:
        return [
            f"## model.tflite ({card['tflite_quantization']} quantization)",
            "```python",
            "from ai_edge_litert.interpreter import Interpreter  # or tf.lite.Interpreter",
            'interpreter = Interpreter(model_path="model.tflite")',
            "interpreter.allocate_tensors()",
            "entry = interpreter.get_input_details()[0]",
            "# int8-full: quantize the input with entry['quantization'] (scale, zero point)",
            'interpreter.set_tensor(entry["index"], images[:1])',
            "interpreter.invoke()",
            'probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])',
            "```",
            "",
        ]


class OnnxFormat:
    """`model.onnx` (opset 17, input `images`), with the `onnx` extra installed."""

    name = "onnx"
    file = "model.onnx"

    def write(self, request: WriteRequest) -> Written:
        """Keras's own ONNX exporter (`model.export(format="onnx")`), which follows Keras,
        TensorFlow and NumPy releases; input `images` with a free batch dimension."""
        import importlib.util

        missing = [m for m in ("tf2onnx", "onnx") if importlib.util.find_spec(m) is None]
        if missing:
            raise FormatUnavailable(
                f"model.onnx skipped: {', '.join(missing)} not installed; install the onnx extra "
                "(pip install 'automl-keras[onnx]') to export ONNX"
            )
        from automl.tfruntime import quiet_stderr

        with quiet_stderr(enabled=True):  # tf2onnx logs every optimizer pass
            request.model.export(
                str(request.folder / self.file),
                format="onnx",
                input_signature=[_images_spec(request)],
                opset_version=ONNX_OPSET,
                verbose=False,
            )
        return Written(self.file, self.name)

    def load(self, folder: Path) -> Any:
        import onnxruntime

        return onnxruntime.InferenceSession(
            str(folder / self.file), providers=["CPUExecutionProvider"]
        )

    def run(self, loaded: Any, x: np.ndarray) -> np.ndarray:
        return np.asarray(loaded.run(None, {loaded.get_inputs()[0].name: x})[0])

    def usage(self, card: Mapping[str, Any]) -> list[str]:
        return [
            "## model.onnx",
            "```python",
            "import onnxruntime",
            'session = onnxruntime.InferenceSession("model.onnx")',
            'probabilities = session.run(None, {"images": images})[0]',
            "```",
            "",
        ]


FORMATS: Mapping[str, Format] = MappingProxyType(
    {f.name: f for f in (KerasFormat(), SavedModelFormat(), TFLiteFormat(), OnnxFormat())}
)
"""Every format by name, in the order export writes them and the README lists them."""


def tflite_kind(quantize: str) -> str:
    """The TFLite model's number type for a `--quantize` value (`none` is float32)."""
    return {"none": "float32", "float16": "float16", "int8": "int8", "int8-full": "int8_full"}[
        quantize
    ]


def saved_model_path(folder: Path) -> Path:
    """The SavedModel of an export: `saved_model/1/` (TF Serving's layout), or `saved_model/`
    itself in exports written before that layout."""
    base = folder / SAVED_MODEL
    return base if (base / "saved_model.pb").is_file() else base / SAVED_MODEL_VERSION


def _saved_model(request: WriteRequest) -> Path:
    """The SavedModel in the export folder, exported on first use (TFLite is converted from it;
    export removes it again when `savedmodel` was not asked for)."""
    path = request.folder / SAVED_MODEL / SAVED_MODEL_VERSION
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        request.model.export(
            str(path),
            format="tf_saved_model",
            verbose=False,
            input_signature=[_images_spec(request)],  # the signature's input is `images`
        )
    return path


def _images_spec(request: WriteRequest) -> Any:
    """float32 images with a free batch dimension, named `images` (as clients send them)."""
    import tensorflow as tf

    return tf.TensorSpec((None, *request.dataset.input_shape), tf.float32, name="images")


def _quantized(x: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    """Float input as the tensor takes it (int8: x / scale + zero point, rounded, clipped)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind != "i":
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantized(y: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind != "i":
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def _convert_to_tflite(saved_model: Path, request: WriteRequest) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if request.quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif request.quantize in ("int8", "int8-full"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        calibration = request.dataset.train.x[:CALIBRATION_IMAGES].astype("float32")

        def representative() -> Any:
            for index in range(len(calibration)):
                yield [calibration[index : index + 1]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if request.quantize == "int8-full":  # microcontrollers and Edge TPU: int8 in and out
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    from automl.tfruntime import quiet_stderr

    with quiet_stderr(enabled=True):  # the converter reports its settings on stderr
        return bytes(converter.convert())
