"""Sparse inference for unstructured-pruned float32 models, used only where it is faster.

The TFLite converter's `Optimize.EXPERIMENTAL_SPARSITY` stores mostly-zero weights in a
sparse format behind `DENSIFY` ops, which XNNPACK can run with its sparse kernels (the
"Fast Sparse ConvNets" subgraphs: 1×1 convolutions at least 2/3 zeros between a 3×3
stride-2 stem and a spatial mean). Whether a given model, runtime and CPU gains from it
is not predictable, so `choose_float32` measures it: both files run in the LiteRT
interpreter on the same input, interleaved, and the sparse one is kept only when its
median is clearly lower and its outputs match the dense file's. The choice and both
timings go into `export_report.json` (the entry's `settings["sparse_inference"]`).

The converter offers the encoding but no such decision, hence this module.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from edgeopt.convert.inspect import constant_tensors

# Below this share of zero weights the converter keeps weights dense anyway.
MIN_ZERO_FRACTION = 0.5
# The sparse file must be at least this much faster (medians) to be used: the VM's noise.
MIN_SPEEDUP = 1.05
# Largest |sparse - dense| output difference accepted (both are float32 computations).
MAX_ABS_DIFFERENCE = 1e-3
ROUNDS, MIN_SECONDS = 15, 0.3


def zero_fraction(model: bytes) -> float:
    """Share of zeros among the float weight matrices (rank >= 2, >= 64 values) of a .tflite."""
    zeros = total = 0
    for array in constant_tensors(model).values():
        if array.dtype.kind == "f" and array.ndim >= 2 and array.size >= 64:
            zeros += int(np.count_nonzero(array == 0))
            total += array.size
    return zeros / total if total else 0.0


def _invoke_ms(interpreter, feeds: Sequence[tuple[int, np.ndarray]]) -> float:
    for index, value in feeds:
        interpreter.set_tensor(index, value)
    started = time.perf_counter()
    interpreter.invoke()
    return 1000 * (time.perf_counter() - started)


def _prepared(data: bytes, sample: Sequence[np.ndarray]):
    from edgeopt.convert.interpreter import make_interpreter

    interpreter = make_interpreter(data, num_threads=1)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    feeds = [(d["index"], np.asarray(x[:1] if d["shape"][0] == 1 else x, dtype=d["dtype"]))
             for d, x in zip(details, sample)]
    for index, value in feeds:
        if list(value.shape) != list(interpreter.get_tensor(index).shape):
            interpreter.resize_tensor_input(index, value.shape)
    interpreter.allocate_tensors()
    return interpreter, feeds


def _outputs(interpreter) -> list[np.ndarray]:
    return [interpreter.get_tensor(d["index"]).astype("float32") for d in interpreter.get_output_details()]


def compare_latency(dense: bytes, sparse: bytes, sample: Sequence[np.ndarray]) -> dict:
    """Median LiteRT latency (1 thread) of both files on `sample` (one array per input,
    a batch of one), measured interleaved; and how far their outputs are apart."""
    runs = {"dense": _prepared(dense, sample), "sparse": _prepared(sparse, sample)}
    times: dict[str, list[float]] = {"dense": [], "sparse": []}
    for interpreter, feeds in runs.values():  # warm-up
        _invoke_ms(interpreter, feeds)
    started = time.perf_counter()
    while len(times["dense"]) < ROUNDS or time.perf_counter() - started < MIN_SECONDS:
        for name, (interpreter, feeds) in runs.items():
            times[name].append(_invoke_ms(interpreter, feeds))
        if len(times["dense"]) >= 10 * ROUNDS:
            break
    difference = max((float(np.max(np.abs(a - b))) for a, b in
                      zip(_outputs(runs["dense"][0]), _outputs(runs["sparse"][0]))), default=0.0)
    return {"dense_p50_ms": float(np.median(times["dense"])), "sparse_p50_ms": float(np.median(times["sparse"])),
            "runs": len(times["dense"]), "max_abs_difference": difference}


def choose_float32(dense: bytes, convert_sparse: Callable[[], bytes], sample: Sequence[np.ndarray] | None
                   ) -> tuple[bytes, dict]:
    """The float32 file to keep, and what was decided (for the report).

    Args:
        dense: the float32 .tflite as converted.
        convert_sparse: makes the same model with the converter's sparsity encoding.
        sample: inputs to time both on (one array per input), or None (nothing to time:
            the dense file is kept).
    """
    fraction = zero_fraction(dense)
    decision = {"zero_fraction": round(fraction, 4), "used": False}
    if fraction < MIN_ZERO_FRACTION:
        decision["reason"] = f"weights {fraction:.0%} zeros, below {MIN_ZERO_FRACTION:.0%}: dense"
        return dense, decision
    if sample is None:
        decision["reason"] = "no sample input to time the sparse encoding on: dense"
        return dense, decision
    sparse = convert_sparse()
    if "DENSIFY" not in _op_names(sparse):
        decision["reason"] = "the converter kept every weight dense"
        return dense, decision
    figures = compare_latency(dense, sparse, sample)
    decision.update(figures, sparse_size_bytes=len(sparse), dense_size_bytes=len(dense))
    speedup = figures["dense_p50_ms"] / max(figures["sparse_p50_ms"], 1e-9)
    decision["speedup"] = round(speedup, 3)
    if figures["max_abs_difference"] > MAX_ABS_DIFFERENCE:
        decision["reason"] = f"sparse outputs differ by {figures['max_abs_difference']:.2g}: dense"
    elif speedup < MIN_SPEEDUP:
        decision["reason"] = f"sparse kernels not faster here ({speedup:.2f}x): dense"
    else:
        decision.update(used=True, reason=f"sparse kernels {speedup:.2f}x faster in LiteRT here")
        return sparse, decision
    return dense, decision


def _op_names(data: bytes) -> set[str]:
    from edgeopt.convert.inspect import inspect_tflite

    return set(inspect_tflite(data).op_counts)
