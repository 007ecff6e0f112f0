"""Per-op mixed precision of a float32 .tflite model, through ai-edge-quantizer's scopes.

A model is cut into *regions*: each op that holds weights (fully connected, conv,
depthwise conv, transposed conv, embedding lookup, batch matmul with a constant
operand) together with the weightless ops that follow it up to the next weight op
(the ops before the first weight op join the first region). A region gets one of
`int4` (4-bit weights, float compute), `int8` (int8 weights and activations),
`int16x8` (int16 activations, int8 weights) or `float32`. Cutting at weight ops
keeps every precision boundary between two regions, never inside one, so a
mixed model has at most one quantize/dequantize pair per region boundary.

ai-edge-quantizer does the quantizing: a recipe entry per region whose regex is the
region's op scopes (its output tensor names, as `get_op_scope` defines them),
calibrated once for every tensor so that any mix reuses the same ranges. The TFLite
converter cannot do this: its `denylisted_nodes` only mixes int8 with float, and it
has no int4.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from edgeopt._quiet import capture_native_output
from edgeopt.convert.precision import Precision
from edgeopt.errors import ConversionError, MissingDependencyError

# What a region can be, from the smallest file to the largest.
LEVELS = (Precision.INT4, Precision.INT8, Precision.INT16X8, Precision.FLOAT32)
# int8 weights with float compute: not a precision of its own, int4's per-op fallback.
INT8_WEIGHTS = "int8_weights"
# File bytes per weight at each level.
WEIGHT_BYTES = {Precision.INT4: 0.5, Precision.INT8: 1.0, Precision.INT16X8: 1.0, Precision.FLOAT32: 4.0,
                INT8_WEIGHTS: 1.0}


@dataclass
class Region:
    """One weight op and the weightless ops after it.

    Attributes:
        index: position in execution order (0 first).
        name: the weight op's scope (its output tensor names).
        op_type: the weight op, e.g. `FULLY_CONNECTED`.
        weights: number of weight values it holds.
        scopes: the scopes of every op in the region, the weight op first.
    """

    index: int
    name: str
    op_type: str
    weights: int
    scopes: list[str] = field(default_factory=list)
    output: str = ""

    @property
    def regex(self) -> str:
        return "^(?:" + "|".join(re.escape(s) for s in self.scopes) + ")$"

    @property
    def weight_regex(self) -> str:
        return "^" + re.escape(self.scopes[0]) + "$"


def _aeq():
    try:
        from ai_edge_quantizer import quantizer
        from ai_edge_quantizer.utils import tfl_flatbuffer_utils
    except ImportError as exc:
        raise MissingDependencyError(f"Mixed precision needs ai-edge-quantizer. Received: {exc}. "
                                     "Run `pip install ai-edge-quantizer`.") from exc
    return quantizer, tfl_flatbuffer_utils


def regions(float_model: bytes) -> list[Region]:
    """The regions of a float32 .tflite model's main subgraph, in execution order.

    Raises:
        ConversionError: the model has no op with weights (nothing to choose).
    """
    _, fb = _aeq()
    model = fb.read_model(bytearray(float_model))
    graph = model.subgraphs[0]
    weight_ops = {str(getattr(k, "value", k)) for k in fb.TFL_OP_TO_WEIGHT_QUANTIZED_DIM}
    found: list[Region] = []
    pending: list[str] = []
    for op in graph.operators:
        name = fb.TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode)
        op_type = str(getattr(name, "value", name or "OTHER"))
        scope = fb.get_op_scope(op, graph.tensors)
        constants = [graph.tensors[i] for i in op.inputs if i >= 0 and _constant(model, graph.tensors[i])]
        weights = [t for t in constants if t.shape is not None and len(t.shape) >= 2]
        if weights and (op_type in weight_ops or op_type == "BATCH_MATMUL"):
            output = fb.get_tensor_name(graph.tensors[op.outputs[0]]) if len(op.outputs) else ""
            found.append(Region(len(found), scope, op_type, int(np.prod(weights[0].shape)), [scope], output))
            if len(found) == 1:
                found[0].scopes += pending
        elif found:
            found[-1].scopes.append(scope)
        else:
            pending.append(scope)
    if not found:
        raise ConversionError("This model has no op with weights to quantize. Received: no FULLY_CONNECTED, "
                              "CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, EMBEDDING_LOOKUP or constant "
                              "BATCH_MATMUL op. Use a uniform precision (float16, dynamic) instead of auto.")
    return found


def _constant(model, tensor) -> bool:
    if tensor.buffer <= 0 or tensor.buffer >= len(model.buffers):
        return False
    buffer = model.buffers[tensor.buffer]
    return (buffer.data is not None and len(buffer.data) > 0) or bool(getattr(buffer, "offset", 0))


def estimated_bytes(found: Sequence[Region], choice: Mapping[int, Precision]) -> float:
    """The weight bytes of a choice (the ordering the search uses; the file adds overhead)."""
    return sum(r.weights * WEIGHT_BYTES[_level(choice[r.index])] for r in found)


def _level(value):
    return INT8_WEIGHTS if value == INT8_WEIGHTS else Precision(value)


def boundaries(found: Sequence[Region], choice: Mapping[int, Precision]) -> int:
    """How many neighbouring regions differ in precision (each adds quantize/dequantize ops)."""
    return sum(1 for a, b in zip(found, found[1:]) if choice[a.index] != choice[b.index])


def recipe(found: Sequence[Region], choice: Mapping[int, Precision]) -> list[dict]:
    """The ai-edge-quantizer recipe of a choice (regions left float32 get no entry)."""
    from ai_edge_quantizer import recipe_manager

    manager = recipe_manager.RecipeManager()
    for region in found:
        level = _level(choice[region.index])
        if level in (Precision.INT4, INT8_WEIGHTS):
            manager.add_weight_only_config(region.weight_regex, region.op_type, 4 if level is Precision.INT4 else 8)
        elif level in (Precision.INT8, Precision.INT16X8):
            manager.add_static_config(region.regex, "*", 16 if level is Precision.INT16X8 else 8, 8)
    return manager.get_quantization_recipe()


class MixedQuantizer:
    """Makes mixed-precision .tflite bytes from one float32 model, calibrated once.

    Args:
        float_model: the float32 .tflite bytes.
        calibration: representative inputs, one array per signature input (in
            signature order), or None when no region will be int8/int16x8.
        batch_size: the model's fixed batch size, or None. Defaults to `None`.
        input_names: the signature names of the arrays' inputs, in their order; where
            they do not match the .tflite's, its own order. Defaults to `None`.
    """

    def __init__(self, float_model: bytes, calibration: Sequence[np.ndarray] | None, batch_size: int | None = None,
                 input_names: Sequence[str] | None = None):
        quantizer, _ = _aeq()
        self._input_names = list(input_names) if input_names else None
        self._quantizer = quantizer
        self.float_model = bytes(float_model)
        self.regions = regions(self.float_model)
        self._calibration = calibration
        self._batch_size = batch_size
        self._ranges: dict | None = None

    def signature_data(self, arrays: Sequence[np.ndarray], step: int = 32) -> dict:
        """`{signature: [{input: batch}, ...]}`, the form ai-edge-quantizer reads."""
        from ai_edge_litert.interpreter import Interpreter

        signatures = Interpreter(model_content=self.float_model).get_signature_list()
        key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        names = list(signatures[key]["inputs"])
        if self._input_names and sorted(self._input_names) == sorted(names):
            names = self._input_names  # the arrays' order, by name (LiteRT lists signature inputs sorted)
        step = self._batch_size or step
        batches = []
        for start in range(0, len(arrays[0]), step):
            batch = [np.asarray(a[start:start + step]) for a in arrays]
            if len(batch[0]) < step and self._batch_size:  # a fixed batch: repeat the last sample
                batch = [np.concatenate([b, np.repeat(b[-1:], step - len(b), axis=0)]) for b in batch]
            batches.append(dict(zip(names, batch)))
        return {key: batches}

    def _calibrated(self) -> dict:
        if self._ranges is None:
            if self._calibration is None:
                raise ConversionError("int8 and int16x8 regions need calibration data. Received: none. "
                                      "Pass calibration data (--calibration-data).")
            full = self._quantizer.Quantizer(bytearray(self.float_model),
                                             recipe(self.regions, {r.index: Precision.INT16X8 for r in self.regions}))
            with capture_native_output(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # LiteRT's note that preserving all tensors is for debugging
                self._ranges = full.calibrate(self.signature_data(self._calibration))
        return self._ranges

    def quantize(self, choice: Mapping[int, Precision]) -> bytes:
        """The .tflite bytes of `choice` (region index -> precision); all float32 is the float model.

        Raises:
            ConversionError: ai-edge-quantizer failed on this choice.
        """
        levels = {_level(choice[r.index]) for r in self.regions}
        if levels == {Precision.FLOAT32}:
            return self.float_model
        ranges = self._calibrated() if levels & {Precision.INT8, Precision.INT16X8} else None
        try:  # the recipe too: ai-edge-quantizer refuses some op / precision pairs while building it
            entries = recipe(self.regions, choice)
            with capture_native_output(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = self._quantizer.Quantizer(bytearray(self.float_model), entries).quantize(
                    ranges, enable_progress_bar=False, enable_progress_report=False)
        except Exception as exc:  # the quantizer raises many types
            raise ConversionError(
                f"ai-edge-quantizer failed on a mixed-precision choice. Received: {type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]}. Use a uniform precision instead of auto.") from exc
        return bytes(result.quantized_model)
