"""The TFLite converter's own int8 error per layer, from `tf.lite.experimental.QuantizationDebugger`.

`edgeopt export -p int8` ships the converter's int8, not ai-edge-quantizer's, so the
sensitivity table also shows how the converter's calibrated int8 does per layer: the
debugger runs the int8 model with a NumericVerify op after every quantized op, which
compares the op's dequantized output with the float op fed the same input. Its
`layer_direct_compare_metrics` get both tensors, so the SNR in dB is ours
(`sensitivity.snr_db`, the same figure as the other columns).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeopt._quiet import capture_native_output
from edgeopt.convert.mixed import Region

_PREFIX = "NumericVerify/"


def converter_int8_layer_snr(saved_model: str | Path, calibration: Sequence[np.ndarray], input_names: Sequence[str],
                             batch_size: int | None, found: Sequence[Region], samples: int = 64) -> dict[int, float]:
    """Region index -> SNR (dB) of its weight op's output in the converter's int8 model.

    Regions the debugger does not report (an op the converter kept in float, a name it
    changed) are left out; any failure of the debugger gives an empty mapping, since
    this column only adds to the ai-edge-quantizer figures.
    """
    import tensorflow as tf

    from edgeopt.convert.engines import _representative
    from edgeopt.convert.sensitivity import snr_db

    arrays = [np.asarray(a)[:samples] for a in calibration]
    dataset = _representative(arrays, list(input_names), batch_size)

    def compare(float_tensors, quant_tensors, scale, zero_point) -> float:
        quant = (np.asarray(quant_tensors, np.float32) - zero_point) * scale
        return snr_db(quant, np.asarray(float_tensors, np.float32))

    try:
        with capture_native_output(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = dataset
            options = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={"snr_db": compare})
            debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset,
                                                                 debug_options=options)
            debugger.run()
            statistics = debugger.layer_statistics
    except Exception:  # the debugger is an experimental converter API: no column rather than no table
        return {}
    out: dict[int, float] = {}
    for key, values in statistics.items():
        name = key[len(_PREFIX):] if key.startswith(_PREFIX) else key
        # The debugger names a layer by its tensor name plus a suffix (`...BiasAdd1:21`): longest prefix wins.
        matches = [r for r in found if r.output and name.startswith(r.output)]
        if matches and "snr_db" in values:
            region = max(matches, key=lambda r: len(r.output))
            out[region.index] = round(float(values["snr_db"]), 3)
    return out
