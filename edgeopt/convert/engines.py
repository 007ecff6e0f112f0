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
import warnings
from importlib import resources
from typing import Iterable, Sequence

import numpy as np

from edgeopt._quiet import capture_native_output
from edgeopt.convert import diagnostics
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
    calibration: Sequence[np.ndarray] | np.ndarray | None = None,
    input_names: Sequence[str] | None = None,
    batch_size: int | None = None,
    io_dtype: IODtype = IODtype.INT8,
    learned_ranges: bool = False,
    select_tf_ops: bool = False,
    sparsity: bool = False,
) -> tuple[bytes, dict]:
    """Converts a SavedModel with `tf.lite.TFLiteConverter`; returns bytes and settings.

    Args:
        saved_model_dir: the SavedModel, read through its `serving_default` signature.
        precision: what to make.
        calibration: representative samples, one array per input (or one array).
            Defaults to `None`.
        input_names: the signature names of those inputs; with several inputs each
            calibration sample is a dict by name. Defaults to `None`.
        batch_size: the model's fixed batch size (samples are fed in batches of it),
            or None for a free batch. Defaults to `None`.
        io_dtype: input/output type of int8. Defaults to `IODtype.INT8`.
        learned_ranges: int8 takes its scales from the model's fake-quant ops (a
            quantization-aware model) and no representative dataset is used.
            Defaults to `False`.
        select_tf_ops: allow TensorFlow ops the TFLite builtins lack (Flex; the .tflite
            then needs the Flex delegate) and keep TensorList ops as they are.
            Defaults to `False`.
        sparsity: float32 only: store mostly-zero weights sparse behind DENSIFY ops
            (`Optimize.EXPERIMENTAL_SPARSITY`, for XNNPACK's sparse kernels; see
            `edgeopt.convert.sparse`). Defaults to `False`.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    settings: dict = {"tool": CONVERTER, "precision": str(precision)}
    if precision is not Precision.FLOAT32:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        settings["optimizations"] = ["DEFAULT"]
    elif sparsity:
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        settings["optimizations"] = ["EXPERIMENTAL_SPARSITY"]
    if precision is Precision.FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
        settings["supported_types"] = ["float16"]
    if learned_ranges:
        settings["quantization_aware"] = True  # scales from the model's fake-quant ranges
    elif precision.needs_calibration:
        if calibration is None:
            raise ConversionError(f"{precision} needs calibration samples. Received: None. Pass calibration data.")
        samples = [calibration] if isinstance(calibration, np.ndarray) else list(calibration)
        converter.representative_dataset = _representative(samples, input_names, batch_size)
        settings["calibration_samples"] = int(len(samples[0]))
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision is Precision.INT8:
        if not learned_ranges:  # the converter then insists on a representative dataset
            ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            settings["supported_ops"] = ["TFLITE_BUILTINS_INT8"]
        io_type = {IODtype.INT8: tf.int8, IODtype.UINT8: tf.uint8, IODtype.FLOAT32: tf.float32}[io_dtype]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
        settings["io_dtype"] = str(io_dtype)
    if precision is Precision.INT16X8:
        ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        settings.update(supported_ops=["EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"], io_dtype="float32")
    if select_tf_ops:
        ops = ops + [tf.lite.OpsSet.SELECT_TF_OPS]
        converter._experimental_lower_tensor_list_ops = False  # the converter's own advice for TensorList ops
        settings["supported_ops"] = [op.name for op in ops]
        settings["select_tf_ops"] = True
    if ops != [tf.lite.OpsSet.TFLITE_BUILTINS]:
        converter.target_spec.supported_ops = ops
    captured = None
    try:
        with warnings.catch_warnings(), capture_native_output() as captured:
            warnings.simplefilter("ignore")
            data = bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
        raise converter_error(precision, exc, captured.text if captured is not None else "",
                              select_tf_ops=select_tf_ops) from exc
    return data, settings


def converter_error(precision: Precision, exc: BaseException, log: str = "", *,
                    select_tf_ops: bool = False) -> ConversionError:
    """A `ConversionError` that quotes the converter's own error lines and its hint."""
    structured = [getattr(e, "error_message", "") for e in getattr(exc, "errors", None) or []]
    diagnosis = diagnostics.diagnose(str(exc), "\n".join(f"error: {m}" for m in structured if m), log)
    said = diagnosis.summary().rstrip(".")
    received = (f"converter log: error: {said}" if said
                else diagnostics.first_line(str(exc), fallback=type(exc).__name__))
    parts = [f"The TFLite converter failed for {precision}. Received: {received}."]
    if diagnosis.select_ops:
        parts.append(f"Ops that need TF Select: {', '.join(diagnosis.select_ops[:8])}.")
    if diagnosis.custom_ops:
        parts.append(f"Ops without a TFLite kernel: {', '.join(diagnosis.custom_ops[:8])}.")
    if diagnosis.hints:
        hint = diagnosis.hints[0].split(" For example")[0].rstrip(".")
        parts.append(f"Converter hint: {hint}.")
    if diagnosis.tensor_list and not select_tf_ops:
        parts.append("Fix: this model's RNN or loop needs TensorList ops with static shapes: give its keras.Input a "
                     "fixed batch_size (and sequence length), build the RNN with unroll=True, or export with "
                     "select_tf_ops=True (--select-tf-ops; the .tflite then needs the Flex delegate).")
    elif diagnosis.select_ops and not select_tf_ops:
        parts.append("Fix: replace those ops with TFLite builtins, or export with select_tf_ops=True "
                     "(--select-tf-ops; the .tflite then needs the Flex delegate).")
    else:
        parts.append("Check the model's ops are TFLite builtins; for int8, that calibration data is representative.")
    parts.append("Run with --verbose to see the converter's whole log.")
    message = " ".join(" ".join(parts).split())
    return ConversionError(message, log=log or str(exc), errors=diagnosis.errors)


def _representative(samples: list[np.ndarray], names: Sequence[str] | None, batch_size: int | None):
    """Calibration batches: `[x]` for one input, a dict by signature name for several
    (the converter maps names to its own input order). A fixed batch is fed whole."""
    step = batch_size or 1
    count = len(samples[0])

    def dataset() -> Iterable:
        for start in range(0, max(count - step + 1, 1), step):
            batch = [s[start:start + step] for s in samples]
            if len(batch[0]) < step:  # fewer samples than one fixed batch: repeat the last
                batch = [np.concatenate([b, np.repeat(b[-1:], step - len(b), axis=0)]) for b in batch]
            if len(batch) == 1 or not names:
                yield batch
            else:
                yield dict(zip(names, batch))

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
