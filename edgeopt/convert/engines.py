"""The two tools that produce .tflite bytes: the TFLite converter and ai-edge-quantizer.

The converter reads the SavedModel traced once by the exporter and makes float32,
full-integer int8 and int16x8 models (its calibrated int8 holds accuracy where
ai-edge-quantizer's static int8 lost 20 points on a 1-D CNN). ai-edge-quantizer
rewrites the float32 .tflite for the weight-only precisions (float16, dynamic, int4)
in milliseconds instead of a converter run of seconds; its results are checked by the
exporter, which falls back to the converter for float16 and dynamic.
"""

from __future__ import annotations

import json
import re
import warnings
from importlib import resources
from typing import Iterable

import numpy as np

from edgeopt._quiet import capture_native_output
from edgeopt.convert.precision import IODtype, Precision
from edgeopt.errors import ConversionError, MissingDependencyError

CONVERTER = "tflite-converter"
QUANTIZER = "ai-edge-quantizer"

# Precisions ai-edge-quantizer can derive from the float32 .tflite.
QUANTIZER_PRECISIONS = (Precision.FLOAT16, Precision.DYNAMIC, Precision.INT4)


def convert_saved_model(
    saved_model_dir: str,
    precision: Precision,
    *,
    calibration: np.ndarray | None = None,
    io_dtype: IODtype = IODtype.INT8,
    learned_ranges: bool = False,
) -> tuple[bytes, dict]:
    """Converts a SavedModel with `tf.lite.TFLiteConverter`; returns bytes and settings.

    With `learned_ranges` (a quantization-aware model) int8 takes its scales from the
    model's fake-quant ops and no representative dataset is used.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    settings: dict = {"tool": CONVERTER, "precision": str(precision)}
    if precision is not Precision.FLOAT32:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        settings["optimizations"] = ["DEFAULT"]
    if precision is Precision.FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
        settings["supported_types"] = ["float16"]
    if learned_ranges:
        settings["quantization_aware"] = True  # scales from the model's fake-quant ranges
    elif precision.needs_calibration:
        if calibration is None:
            raise ConversionError(f"{precision} needs calibration samples. Received: None. Pass calibration data.")
        converter.representative_dataset = _representative(calibration)
        settings["calibration_samples"] = int(len(calibration))
    if precision is Precision.INT8:
        if not learned_ranges:  # the converter then insists on a representative dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            settings["supported_ops"] = ["TFLITE_BUILTINS_INT8"]
        io_type = {IODtype.INT8: tf.int8, IODtype.UINT8: tf.uint8, IODtype.FLOAT32: tf.float32}[io_dtype]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
        settings["io_dtype"] = str(io_dtype)
    if precision is Precision.INT16X8:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        settings.update(supported_ops=["EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"], io_dtype="float32")
    captured = None
    try:
        with warnings.catch_warnings(), capture_native_output() as captured:
            warnings.simplefilter("ignore")
            data = bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        first = _without_locations(first)
        log = captured.text if captured is not None else ""
        said = _errors_in(log, exclude=first)
        raise ConversionError(
            f"The TFLite converter failed for {precision}. Received: {first[:300]}"
            + (f" (converter log: {said})" if said else "") + ". "
            "Check the model's ops are TFLite builtins; for int8, that calibration data is representative. "
            "Run with --verbose to see the converter's whole log.",
            log=log,
        ) from exc
    return data, settings


def _without_locations(line: str) -> str:
    """An MLIR diagnostic without its long `loc(callsite(...))` prefix."""
    line = re.sub(r"loc\(.*\):\s*(error:)", r"\1", line)
    return " ".join(re.sub(r"\s*loc\(.*$", "", line).split())  # a location cut off at the line end


def _errors_in(log: str, *, exclude: str = "", width: int = 300) -> str:
    """The converter's `error:` and `... ops:` lines from its captured log, on one line."""
    lines = [_without_locations(line) for line in log.splitlines()
             if "error:" in line or line.strip().endswith("ops:") or " ops: " in line]
    lines = [line for line in dict.fromkeys(lines) if line and line not in exclude]
    joined = " | ".join(lines[:4])
    return joined if len(joined) <= width else joined[: width - 1] + "…"


def _representative(samples: np.ndarray):
    def dataset() -> Iterable[list[np.ndarray]]:
        for sample in samples:
            yield [sample[None]]

    return dataset


def _quantizer_recipe(precision: Precision):
    from ai_edge_quantizer import recipe

    if precision is Precision.DYNAMIC:
        # The recipe that mirrors the converter's dynamic-range scheme (symmetric
        # per-channel int8 weights, integer compute, tensors under 1024 values kept float).
        path = resources.files("ai_edge_quantizer") / "recipes" / "dynamic_legacy_wi8_afp32_recipe.json"
        return json.loads(path.read_text())
    if precision is Precision.FLOAT16:
        return [
            {
                "regex": ".*",
                "operation": "*",
                "algorithm_key": "float_casting",
                "op_config": {
                    "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT", "granularity": "TENSORWISE", "symmetric": True},
                    "compute_precision": "FLOAT",
                    "explicit_dequantize": True,
                },
            }
        ]
    if precision is Precision.INT4:
        return recipe.weight_only_wi4_afp32()
    raise ConversionError(f"ai-edge-quantizer is not used for {precision}. Received: {precision}.")


def quantize_tflite(float_model: bytes, precision: Precision) -> tuple[bytes, dict]:
    """Derives `precision` from a float32 .tflite with ai-edge-quantizer."""
    try:
        from ai_edge_quantizer import quantizer
    except ImportError as exc:
        raise MissingDependencyError(
            f"{precision} export needs ai-edge-quantizer. Received: {exc}. Run `pip install ai-edge-quantizer`."
        ) from exc
    recipe = _quantizer_recipe(precision)
    captured = None
    try:
        with capture_native_output() as captured:
            result = quantizer.Quantizer(bytearray(float_model), recipe).quantize(
                enable_progress_bar=False, enable_progress_report=False
            )
    except Exception as exc:  # the quantizer raises many types
        raise ConversionError(
            f"ai-edge-quantizer failed for {precision}. Received: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}. Try the TFLite converter's precisions (float16, dynamic) instead.",
            log=captured.text if captured is not None else "",
        ) from exc
    return bytes(result.quantized_model), {"tool": QUANTIZER, "precision": str(precision), "recipe": recipe}
