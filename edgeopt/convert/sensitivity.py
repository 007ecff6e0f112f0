"""Per-op quantization sensitivity: the cost of quantizing one region alone.

For every region of the float32 .tflite (a weight op and the weightless ops after
it, see `edgeopt.convert.mixed`) and every scheme (`int8`, `int4` weight-only,
`int16x8`), ai-edge-quantizer quantizes that region alone (a recipe scoped to it)
and LiteRT runs the result on the eval data: the model's accuracy drop, the SNR of
the model's output against the float32 .tflite, and the SNR of the region's own
output tensor (ai-edge-quantizer's `model_validator.compare_model`, which pairs and
dequantizes the tensors of both models).

Why not only the converter's `QuantizationDebugger`: its layer statistics are int8
only (no int4, no int16x8), and `denylisted_nodes` mixes int8 with float only. Why
our own SNR function: ai-edge-quantizer 0.10 registers its SNR function under the
MSE key (`ValidationErrorMetric.SNR` raises "not supported"), so it is passed to
`compare_model` as a plain compare function, in decibels.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from edgeopt.convert.mixed import MixedQuantizer, Region
from edgeopt.convert.precision import Precision, parse_precisions
from edgeopt.convert.validate import Labels, Validation, compare_outputs
from edgeopt.errors import ConfigError, ConversionError, EdgeoptError

JSON_NAME, PNG_NAME = "sensitivity.json", "sensitivity.png"

# The schemes a region is tried at, in the order the table shows them.
SCHEMES = (Precision.INT8, Precision.INT4, Precision.INT16X8)
_LAYER_SAMPLES = 16
_EPSILON = 1e-12

Run = Callable[[bytes, list[np.ndarray]], list[np.ndarray]]


def snr_db(noisy, signal) -> float:
    """Signal-to-noise ratio of `noisy` against `signal`, in dB (capped at 200 for an exact copy)."""
    noisy, signal = np.asarray(noisy, np.float64).ravel(), np.asarray(signal, np.float64).ravel()
    if noisy.size != signal.size or signal.size == 0:
        return float("nan")
    noise = float(np.mean((noisy - signal) ** 2))
    power = float(np.mean(signal ** 2))
    if noise <= _EPSILON * max(power, _EPSILON):
        return 200.0
    return 10.0 * math.log10(max(power, _EPSILON) / noise)


class Evaluator:
    """Runs candidate .tflite bytes on the eval data and scores them against the reference.

    Args:
        run: `(bytes, inputs) -> outputs`, both in signature order.
        eval_x: the eval inputs, one array per input.
        reference: the float model's outputs on them (the Keras model's, as the
            exporter's validation uses).
        labels: one `Labels` per output.
        names: the output names.
    """

    def __init__(self, run: Run, eval_x: list[np.ndarray], reference: list[np.ndarray],
                 labels: Sequence[Labels], names: Sequence[str]):
        self.run, self.eval_x, self.reference = run, eval_x, reference
        self.labels, self.names = list(labels), list(names)
        self.evaluations = 0
        self.float_outputs: list[np.ndarray] | None = None

    def __call__(self, data: bytes) -> tuple[Validation, list[np.ndarray]]:
        self.evaluations += 1
        outputs = self.run(data, self.eval_x)
        return compare_outputs(outputs, self.reference, self.labels, self.names), outputs

    def drop(self, validation: Validation) -> float:
        """Accuracy drop in points (the worst output's)."""
        if validation.accuracy_drop_points is None:
            raise ConfigError("An accuracy budget needs labelled class outputs. Received: eval data whose labels "
                              "give no accuracy for any output. Pass class labels as y in the eval data.")
        return float(validation.accuracy_drop_points)


@dataclass
class OpSensitivity:
    """The cost of one region quantized alone at one scheme."""

    index: int
    op: str
    op_type: str
    weights: int
    precision: str
    accuracy: float | None
    accuracy_drop_points: float | None
    output_snr_db: float | None
    output_relative_error: float | None
    layer_snr_db: float | None = None
    converter_layer_snr_db: float | None = None  # int8 rows: the TFLite converter's int8 (QuantizationDebugger)
    size_bytes: int | None = None
    error: str | None = None


@dataclass
class Sensitivity:
    """Per-op sensitivity: one row per region and scheme; `ranking` orders them.

    `reference_accuracy` is the Keras model's, `float_accuracy` the float32 .tflite's.
    """

    model: str
    rows: list[OpSensitivity]
    reference_accuracy: float | None
    float_accuracy: float | None
    float_size_bytes: int
    samples: int
    seconds: float
    schemes: list[str] = field(default_factory=lambda: [str(s) for s in SCHEMES])

    def ranking(self, precision: str | Precision = Precision.INT8) -> list[OpSensitivity]:
        """The rows of one scheme, most sensitive first (largest drop, then lowest layer SNR)."""
        rows = [r for r in self.rows if r.precision == str(precision)]
        return sorted(rows, key=_badness, reverse=True)

    def most_sensitive(self) -> OpSensitivity:
        """The region whose worst scheme costs most (the first to keep at higher precision)."""
        return max(self.rows, key=_badness)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ranking"] = {s: [r.index for r in self.ranking(s)] for s in self.schemes}
        return out

    @property
    def has_converter_column(self) -> bool:
        return any(r.converter_layer_snr_db is not None for r in self.rows)

    def table_rows(self) -> list[list]:
        """`[index, op type, weights, op, then drop/SNR per scheme (and the converter's int8
        SNR, where measured)]`, most sensitive region first."""
        order = sorted({r.index for r in self.rows}, key=lambda i: max(
            _badness(r) for r in self.rows if r.index == i), reverse=True)
        table = []
        for i in order:
            mine = {r.precision: r for r in self.rows if r.index == i}
            first = next(iter(mine.values()))
            row = [i, first.op_type, first.weights, first.op]
            for scheme in self.schemes:
                r = mine.get(scheme)
                row.append("" if r is None or r.accuracy_drop_points is None else f"{r.accuracy_drop_points:+.2f}")
                row.append("" if r is None or r.layer_snr_db is None else f"{r.layer_snr_db:.1f}")
            if self.has_converter_column:
                r = mine.get(str(Precision.INT8))
                row.append("" if r is None or r.converter_layer_snr_db is None else f"{r.converter_layer_snr_db:.1f}")
            table.append(row)
        return table

    def png(self) -> bytes:
        """A PNG bar chart: accuracy drop per region and scheme."""
        import io

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        indices = sorted({r.index for r in self.rows})
        labels = [f"{i}:{next(r.op_type for r in self.rows if r.index == i)}" for i in indices]
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(indices) * len(self.schemes)), 4))
        width = 0.8 / len(self.schemes)
        for k, scheme in enumerate(self.schemes):
            by_index = {r.index: r for r in self.rows if r.precision == scheme}
            values = [(by_index[i].accuracy_drop_points or 0.0) if i in by_index else 0.0 for i in indices]
            ax.bar([x + k * width for x in range(len(indices))], values, width, label=scheme)
        ax.set_xticks([x + width * (len(self.schemes) - 1) / 2 for x in range(len(indices))])
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("accuracy drop (points), this op alone quantized")
        ax.set_title(f"{self.model}: quantization sensitivity per op")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.legend()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
        return buffer.getvalue()


def _badness(row: OpSensitivity) -> tuple:
    drop = row.accuracy_drop_points if row.accuracy_drop_points is not None else math.inf
    snr = row.layer_snr_db if row.layer_snr_db is not None and not math.isnan(row.layer_snr_db) else 0.0
    return (drop, -(row.output_snr_db or 0.0), -snr)


def layer_snr(quantizer: MixedQuantizer, data: bytes, region: Region, samples: list[np.ndarray]) -> float | None:
    """SNR (dB) of the region's weight-op output tensor in `data` against the float model."""
    if not region.output:
        return None
    from ai_edge_quantizer import model_validator
    from ai_edge_quantizer.utils import validation_utils

    from edgeopt._quiet import capture_native_output

    try:
        with capture_native_output(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LiteRT's note that preserving all tensors is for debugging
            result = model_validator.compare_model(
                quantizer.float_model, data, quantizer.signature_data([s[:_LAYER_SAMPLES] for s in samples]),
                [validation_utils.ValidationErrorMetric.SNR], compare_fns=[snr_db], num_threads=1)
    except Exception:  # a model ai-edge-quantizer's validator cannot pair: the layer figure is left out
        return None
    found = result.get_all_tensor_results().get(region.output)
    return None if not found else round(float(found["snr"]), 3)


def measure(quantizer: MixedQuantizer, evaluate: Evaluator, *, schemes: Sequence[Precision] = SCHEMES,
            layers: bool = True, say: Callable[[str], None] = lambda line: None) -> list[OpSensitivity]:
    """Quantizes every region alone at every scheme and scores it.

    Args:
        quantizer: the float model's regions and ai-edge-quantizer.
        evaluate: runs and scores a candidate.
        schemes: what each region is tried at. Defaults to `SCHEMES`.
        layers: also measure the SNR of each region's own output tensor. Defaults to `True`.
        say: progress lines. Defaults to no output.
    """
    if evaluate.float_outputs is None:
        _, evaluate.float_outputs = evaluate(quantizer.float_model)
    rows = []
    base = {r.index: Precision.FLOAT32 for r in quantizer.regions}
    for region in quantizer.regions:
        for scheme in schemes:
            row = OpSensitivity(region.index, region.name, region.op_type, region.weights, str(scheme),
                                None, None, None, None)
            try:
                data = quantizer.quantize({**base, region.index: Precision(scheme)})
                validation, outputs = evaluate(data)
            except EdgeoptError as exc:
                row.error = " ".join(str(exc).split())[:200]
                rows.append(row)
                continue
            row.size_bytes = len(data)
            row.accuracy, row.accuracy_drop_points = validation.accuracy, validation.accuracy_drop_points
            snrs = [snr_db(o, f) for o, f in zip(outputs, evaluate.float_outputs)]
            row.output_snr_db = round(min(snrs), 3)
            row.output_relative_error = round(10 ** (-row.output_snr_db / 20.0), 6)
            if layers:
                row.layer_snr_db = layer_snr(quantizer, data, region, evaluate.eval_x)
            rows.append(row)
        say(f"sensitivity: op {region.index} ({region.op_type}) "
            + ", ".join(f"{r.precision} {r.accuracy_drop_points:+.2f} pts" for r in rows
                        if r.index == region.index and r.accuracy_drop_points is not None))
    return rows


def summarize(model: str, rows: list[OpSensitivity], evaluate: Evaluator, quantizer: MixedQuantizer,
              started: float) -> Sensitivity:
    float_validation, _ = evaluate(quantizer.float_model)
    return Sensitivity(model=model, rows=rows, reference_accuracy=float_validation.reference_accuracy,
                       float_accuracy=float_validation.accuracy, float_size_bytes=len(quantizer.float_model),
                       samples=len(evaluate.eval_x[0]), seconds=round(time.perf_counter() - started, 3))


def quantization_sensitivity(
    model: Any,
    calibration_data: Any,
    eval_data: Any,
    *,
    schemes: Sequence[str | Precision] = SCHEMES,
    calibration_samples: int = 200,
    output_dir: str | os.PathLike | None = None,
    name: str | None = None,
    scale: float = 255.0,
    mean: float = 0.0,
    unsafe: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Sensitivity:
    """The accuracy cost of quantizing each op of `model` alone, per scheme.

    Example:

    ```python
    result = edgeopt.quantization_sensitivity(model, x_train[:200], (x_test, y_test), output_dir="out")
    print(result.most_sensitive().op, result.ranking("int8")[0].accuracy_drop_points)
    ```

    The model is traced and converted to float32 as `export_tflite` does (in a child
    process); the per-op variants are made by ai-edge-quantizer and run in LiteRT in
    this process.

    Args:
        model: a Keras model or a path, as `export_tflite` takes. It is not modified.
        calibration_data: representative inputs (as `export_tflite`'s).
        eval_data: inputs and class labels (as `export_tflite`'s); accuracy is measured on them.
        schemes: any of `int8`, `int4`, `int16x8`. Defaults to `SCHEMES` (all three).
        calibration_samples: at most this many calibration samples. Defaults to `200`.
        output_dir: where to write `sensitivity.json` and `sensitivity.png` (a bar
            chart), or None for no files. Defaults to `None`.
        name: the model's name in the result. Defaults to the model's name.
        scale: image directories become `(pixel - mean) / scale`. Defaults to `255.0`.
        mean: see `scale`. Defaults to `0.0`.
        unsafe: allow model files that run code as they load. Defaults to `False`.
        progress: called with one line per step. Defaults to `None`.

    Returns:
        A `Sensitivity`: one row per op and scheme, and `ranking(scheme)`.

    Raises:
        ConfigError: bad arguments or data (eval data without class labels).
        ConversionError: the float32 conversion or ai-edge-quantizer failed.
    """
    from edgeopt._files import atomic_write_bytes, atomic_write_json, ensure_writable_dir
    from edgeopt.convert.conversion import run_in_order
    from edgeopt.convert.debugger import converter_int8_layer_snr
    from edgeopt.convert.exporter import _Exporter

    chosen = parse_precisions(schemes)
    unknown = [str(s) for s in chosen if s not in SCHEMES]
    if unknown:
        raise ConfigError(f"Unknown sensitivity scheme. Received: schemes={unknown}. "
                          f"Use any of: {', '.join(str(s) for s in SCHEMES)}.")
    if calibration_data is None or eval_data is None:
        raise ConfigError("Sensitivity needs calibration data and labelled eval data. Received: "
                          f"calibration_data={'given' if calibration_data is not None else None}, "
                          f"eval_data={'given' if eval_data is not None else None}. "
                          "Pass --calibration-data calib.npz and --eval-data test.npz (x and y).")
    target = ensure_writable_dir(output_dir) if output_dir is not None else None
    started = time.perf_counter()
    say = progress or (lambda line: None)
    with tempfile.TemporaryDirectory(prefix="edgeopt-sensitivity-") as tmp:
        exporter = _Exporter(model, [Precision.FLOAT32], output_dir=tmp, calibration_data=calibration_data,
                             eval_data=eval_data, calibration_samples=calibration_samples, io_dtype="int8",
                             max_accuracy_drop=0.0, name=name, scale=scale, mean=mean, unsafe=unsafe,
                             select_tf_ops=False, timeout_s=1800.0, progress=progress)
        try:
            report = exporter.export()
        except EdgeoptError as exc:
            report = getattr(exc, "report", None)
            if report is None or report["float32"].path is None:
                raise
        entry = report["float32"]
        if entry.path is None:
            raise ConversionError(f"The float32 conversion failed. Received: {entry.error}. Fix it first "
                                  "(edgeopt export -p float32 shows the converter's error).")
        float_model = Path(entry.path).read_bytes()
        saved_model = (exporter.source.export_saved_model(Path(tmp) / "saved_model")
                       if Precision.INT8 in chosen else None)
        quantizer = MixedQuantizer(float_model, exporter.calibration.inputs, exporter.source.batch_size,
                                   [i.name for i in exporter.source.inputs])
        converter_snr = {} if saved_model is None else converter_int8_layer_snr(
            saved_model, exporter.calibration.inputs, [i.name for i in exporter.source.inputs],
            exporter.source.batch_size, quantizer.regions)
    if not any(lab.y is not None and lab.kind != "values" for lab in exporter.labels):
        raise ConfigError("Sensitivity measures accuracy, which needs class labels. Received: eval labels that "
                          f"give no accuracy ({', '.join(lab.kind for lab in exporter.labels)} outputs). "
                          "Pass class indices as y in the eval data.")
    inputs = [i.name for i in exporter.source.inputs]
    outputs = list(exporter.source.output_names)
    evaluate = Evaluator(lambda data, xs: run_in_order(data, xs, inputs, outputs), exporter.evaluation.inputs,
                         exporter.reference, exporter.labels, outputs)
    rows = measure(quantizer, evaluate, schemes=chosen, say=say)
    for row in rows:
        if row.precision == Precision.INT8:
            row.converter_layer_snr_db = converter_snr.get(row.index)
    result = summarize(exporter.stem, rows, evaluate, quantizer, started)
    result.schemes = [str(s) for s in chosen]
    if target is not None:
        atomic_write_json(target / JSON_NAME, result.to_dict())
        atomic_write_bytes(target / PNG_NAME, result.png())
        say(f"wrote {target / JSON_NAME} and {target / PNG_NAME}")
    return result
