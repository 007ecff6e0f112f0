"""Running a .tflite model in the LiteRT interpreter with float in, float out.

Integer inputs are quantized with the input tensor's scale and zero point, integer
outputs dequantized with the output's, so a full-integer model can be compared with
its float Keras model on the same samples.
"""

from __future__ import annotations

import numpy as np

from edgeopt._quiet import capture_native_output
from edgeopt.errors import MissingDependencyError


def make_interpreter(model_content: bytes, num_threads: int | None = None):
    """A LiteRT `Interpreter` for already-checked model bytes (see `inspect.check_flatbuffer`)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingDependencyError(
            f"The LiteRT interpreter is not installed. Received: {exc}. Run `pip install ai-edge-litert`."
        ) from exc
    with capture_native_output():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        return Interpreter(model_content=model_content, num_threads=num_threads)


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float values to the integer dtype of a tensor, by its scale and zero point."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    if not scale:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, detail: dict) -> np.ndarray:
    """Integer tensor values back to float, by the tensor's scale and zero point."""
    scale, zero_point = detail["quantization"]
    if np.dtype(detail["dtype"]).kind == "f" or not scale:
        return q.astype(np.float32)
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


class TfliteRunner:
    """Runs a single-input, single-output .tflite model on float batches.

    Args:
        model_content: the model bytes.
        num_threads: interpreter threads. Defaults to `None` (LiteRT's choice).
    """

    def __init__(self, model_content: bytes, num_threads: int | None = None):
        self.interpreter = make_interpreter(model_content, num_threads)
        with capture_native_output():
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = int(self.input["shape"][0])
        signature = self.input.get("shape_signature")
        self._resizable = signature is not None and len(signature) and int(signature[0]) == -1

    def _set_batch(self, n: int) -> None:
        if n != self._batch:
            self.interpreter.resize_tensor_input(self.input["index"], [n, *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self._batch = n

    def run(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Float outputs for float inputs `x` (batch first)."""
        step = batch_size if self._resizable else self._batch
        outputs = []
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            self._set_batch(len(chunk)) if self._resizable else None
            if len(chunk) != self._batch:  # fixed batch: run the remainder one by one
                outputs.extend(self.run_one(sample[None]) for sample in chunk)
                continue
            outputs.append(self.run_one(chunk))
        return np.concatenate(outputs)

    def run_one(self, batch: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], quantize(batch, self.input))
        self.interpreter.invoke()
        return dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)
