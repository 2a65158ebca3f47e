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

QUANTIZATIONS = ("none", "float16", "int8")
CALIBRATION_IMAGES = 200
ONNX_OPSET = 17
SAVED_MODEL = "saved_model"  # also the intermediate that TFLite and ONNX are converted from


@dataclass(frozen=True)
class WriteRequest:
    """What a format needs to write itself.

    Attributes:
        model: the inference Keras model (augmentation layers already removed).
        folder: the export folder being filled.
        dataset: the study's data (input shape; training images to calibrate int8).
        quantize: TFLite quantization: `none` (float32), `float16` or `int8`.
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

        return tf.saved_model.load(str(folder / SAVED_MODEL))

    def run(self, loaded: Any, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return np.asarray(loaded.serve(tf.constant(x)))

    def usage(self, card: Mapping[str, Any]) -> list[str]:
        return [
            "## saved_model/ (TensorFlow Serving)",
            "```python",
            "import tensorflow as tf",
            'model = tf.saved_model.load("saved_model")',
            "probabilities = model.serve(tf.constant(images))",
            "```",
            "TensorFlow Serving: `--model_base_path` pointing at a numbered copy of "
            "`saved_model/` (signature `serving_default`).",
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
        entry = loaded.get_input_details()[0]
        exit_ = loaded.get_output_details()[0]
        outputs = []
        for image in x:
            loaded.set_tensor(entry["index"], image[np.newaxis].astype(entry["dtype"]))
            loaded.invoke()
            outputs.append(loaded.get_tensor(exit_["index"])[0])
        return np.asarray(outputs, dtype="float32")

    def usage(self, card: Mapping[str, Any]) -> list[str]:
        return [
            f"## model.tflite ({card['tflite_quantization']} quantization)",
            "```python",
            "from ai_edge_litert.interpreter import Interpreter  # or tf.lite.Interpreter",
            'interpreter = Interpreter(model_path="model.tflite")',
            "interpreter.allocate_tensors()",
            "entry = interpreter.get_input_details()[0]",
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
        saved_model = _saved_model(request)
        try:
            import tensorflow as tf
            import tf2onnx

            loaded = tf.saved_model.load(str(saved_model))
            spec = [tf.TensorSpec((None, *request.dataset.input_shape), tf.float32, name="images")]
            tf2onnx.convert.from_function(
                tf.function(lambda x: loaded.serve(x)),
                input_signature=spec,
                opset=ONNX_OPSET,
                output_path=str(request.folder / self.file),
            )
        except ImportError as exc:
            raise FormatUnavailable(
                "model.onnx skipped: install the onnx extra "
                "(pip install 'automl-keras[onnx]') to export ONNX"
            ) from exc
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
    return {"none": "float32", "float16": "float16", "int8": "int8"}[quantize]


def _saved_model(request: WriteRequest) -> Path:
    """The SavedModel in the export folder, exported on first use (TFLite and ONNX are
    converted from it; export removes it again when `savedmodel` was not asked for)."""
    path = request.folder / SAVED_MODEL
    if not path.exists():
        request.model.export(str(path), format="tf_saved_model", verbose=False)
    return path


def _convert_to_tflite(saved_model: Path, request: WriteRequest) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if request.quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif request.quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        calibration = request.dataset.train.x[:CALIBRATION_IMAGES].astype("float32")

        def representative() -> Any:
            for index in range(len(calibration)):
                yield [calibration[index : index + 1]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    from automl.tfruntime import quiet_stderr

    with quiet_stderr(enabled=True):  # the converter reports its settings on stderr
        return bytes(converter.convert())
