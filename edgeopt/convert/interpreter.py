"""Running a .tflite model in the LiteRT interpreter with float in, float out.

Inputs and outputs are addressed by the names of the model's signature (the
SavedModel's `serving_default`), so a model with several inputs and outputs is fed
and read by name, not by the converter's tensor order. Integer inputs are quantized
with the input tensor's scale and zero point, integer outputs dequantized with the
output's, so a full-integer model can be compared with its float Keras model on the
same samples. A fixed batch dimension is kept: the samples are fed in batches of
that size, the last one padded.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from edgeopt._quiet import capture_native_output
from edgeopt.errors import ConversionError, MissingDependencyError


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


def _runtime_error(exc: Exception, what: str) -> ConversionError:
    message = " ".join(str(exc).split())[:300].rstrip(".") or type(exc).__name__
    return ConversionError(
        f"LiteRT cannot {what} the converted model. Received: {type(exc).__name__}: {message}. "
        "An op of the model has no LiteRT kernel at this precision: try another precision, "
        "or replace that layer."
    )


class TfliteRunner:
    """Runs a .tflite model on float batches, by the names of its signature.

    Args:
        model_content: the model bytes.
        num_threads: interpreter threads. Defaults to `None` (LiteRT's choice).

    Raises:
        ConversionError: LiteRT cannot prepare or run the model (an op without a kernel
            at this precision, Select TF ops without the Flex delegate).
    """

    def __init__(self, model_content: bytes, num_threads: int | None = None):
        self.interpreter = make_interpreter(model_content, num_threads)
        try:
            with capture_native_output():
                self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise _runtime_error(exc, "prepare") from exc
        signatures = self.interpreter.get_signature_list()
        if signatures:
            key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
            self._runner = self.interpreter.get_signature_runner(key)
            inputs = self._runner.get_input_details()
            outputs = self._runner.get_output_details()
        else:  # a model without signature: inputs and outputs by tensor order
            self._runner = None
            inputs = {d["name"]: d for d in self.interpreter.get_input_details()}
            outputs = {d["name"]: d for d in self.interpreter.get_output_details()}
        self.inputs: dict[str, dict] = dict(inputs)
        self.outputs: dict[str, dict] = dict(outputs)

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs)

    def _batch(self) -> int | None:
        """The fixed batch size of the inputs, or None when it is free."""
        for detail in self.inputs.values():
            signature = detail.get("shape_signature")
            signature = detail["shape"] if signature is None or not len(signature) else signature
            if len(signature) and int(signature[0]) != -1:
                return int(signature[0])
        return None

    def run_named(self, inputs: Mapping[str, np.ndarray], batch_size: int = 64) -> dict[str, np.ndarray]:
        """Float outputs by name for float inputs by name (all batch first, same length)."""
        missing = [name for name in self.inputs if name not in inputs]
        if missing:
            raise ConversionError(
                f"The .tflite model needs inputs {missing}. Received: {sorted(inputs)}. "
                "Pass one array per signature input."
            )
        arrays = {name: np.asarray(inputs[name]) for name in self.inputs}
        total = len(next(iter(arrays.values()))) if arrays else 0
        fixed = self._batch()
        step = fixed or batch_size
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in self.outputs}
        for start in range(0, total, step):
            feed = {name: a[start:start + step] for name, a in arrays.items()}
            real = len(next(iter(feed.values())))
            if fixed and real < fixed:  # a fixed batch: pad the last one with its last sample
                feed = {name: np.concatenate([a, np.repeat(a[-1:], fixed - real, axis=0)]) for name, a in feed.items()}
            for name, value in self._invoke(feed).items():
                chunks[name].append(value[:real])
        return {name: np.concatenate(parts) if parts else np.zeros((0,), np.float32) for name, parts in chunks.items()}

    def run_all(self, inputs: Sequence[np.ndarray], batch_size: int = 64) -> list[np.ndarray]:
        """Float outputs, in signature order, for float inputs in signature order."""
        if len(inputs) != len(self.inputs):
            raise ConversionError(
                f"The .tflite model has {len(self.inputs)} inputs. Received: {len(inputs)} arrays. "
                "Pass one array per input."
            )
        outputs = self.run_named(dict(zip(self.inputs, inputs)), batch_size)
        return [outputs[name] for name in self.outputs]

    def run(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Float outputs for float inputs `x` (batch first) of a one-input, one-output model."""
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise ConversionError(
                f"run() is for one input and one output. Received: a model with {len(self.inputs)} inputs and "
                f"{len(self.outputs)} outputs. Use run_named() or run_all()."
            )
        return self.run_all([x], batch_size)[0]

    def _invoke(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        quantized = {name: quantize(value, self.inputs[name]) for name, value in feed.items()}
        try:
            with capture_native_output():
                if self._runner is not None:
                    raw = self._runner(**quantized)
                else:
                    raw = self._invoke_by_index(quantized)
        except (RuntimeError, ValueError) as exc:
            raise _runtime_error(exc, "run") from exc
        return {name: dequantize(np.asarray(raw[name]), self.outputs[name]) for name in self.outputs}

    def _invoke_by_index(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        interpreter = self.interpreter
        for name, value in feed.items():
            interpreter.resize_tensor_input(self.inputs[name]["index"], list(value.shape))
        interpreter.allocate_tensors()
        for name, value in feed.items():
            interpreter.set_tensor(self.inputs[name]["index"], value)
        interpreter.invoke()
        return {name: interpreter.get_tensor(detail["index"]) for name, detail in self.outputs.items()}
