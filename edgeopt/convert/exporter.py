"""`export_tflite`: one Keras model (or SavedModel) to .tflite files at several precisions.

The model is traced once into a SavedModel; the TFLite converter makes float32 (the
base of every other precision), int8 and int16x8 from it, and ai-edge-quantizer
derives float16, dynamic and int4 from the float32 .tflite in milliseconds. Each
ai-edge-quantizer result must agree with the float32 .tflite on check samples, or the
converter makes that precision instead. Every file is validated against the float
model when evaluation data is given, written under a temporary name and renamed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeopt._files import atomic_write_bytes, atomic_write_json, ensure_writable_dir
from edgeopt._versions import versions
from edgeopt.convert import engines
from edgeopt.convert.arguments import validate_export_args
from edgeopt.convert.calibration import Dataset, check_labels, load_dataset
from edgeopt.convert.inspect import inspect_tflite
from edgeopt.convert.litert import TfliteRunner
from edgeopt.convert.precision import IODtype, Precision, parse_precisions
from edgeopt.convert.source import ModelSource, open_source
from edgeopt.convert.validate import compare_outputs
from edgeopt.errors import AccuracyGateError, ConfigError, ConversionError, EdgeoptError, OutputError

REPORT_NAME = "export_report.json"
# An ai-edge-quantizer result is kept when it agrees this well with the float32 .tflite.
_MIN_AGREEMENT = 0.95
_MAX_RELATIVE_ERROR = 0.05
_CHECK_SAMPLES = 32

Progress = Callable[[str], None]


@dataclass
class ExportEntry:
    """One exported precision: where it went, how big it is, how it validated."""

    precision: str
    status: str  # "ok", "rejected" (accuracy gate) or "failed" (conversion error)
    path: str | None
    sha256: str | None = None
    size_bytes: int | None = None
    gzip_size_bytes: int | None = None
    input_dtype: str | None = None
    output_dtype: str | None = None
    op_counts: dict[str, int] = field(default_factory=dict)
    float_ops: dict[str, int] = field(default_factory=dict)
    fully_integer: bool | None = None
    validation: dict | None = None
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


@dataclass
class ExportReport:
    """What `export_tflite` produced, entry by entry; saved as `export_report.json`."""

    model: str
    source: str
    input: dict
    output_dir: str
    entries: list[ExportEntry]
    reference: dict | None
    versions: dict
    seconds: float

    def __getitem__(self, precision: str) -> ExportEntry:
        for entry in self.entries:
            if entry.precision == str(precision):
                return entry
        raise KeyError(precision)

    @property
    def ok(self) -> bool:
        return all(e.status == "ok" for e in self.entries)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def path(self) -> Path:
        return Path(self.output_dir) / REPORT_NAME


def export_tflite(
    model: Any,
    precisions: Sequence[str | Precision] = (Precision.FLOAT32,),
    *,
    output_dir: str | os.PathLike = ".",
    calibration_data: Any = None,
    eval_data: Any = None,
    calibration_samples: int = 200,
    io_dtype: str | IODtype = IODtype.INT8,
    max_accuracy_drop: float | None = None,
    name: str | None = None,
    scale: float = 255.0,
    mean: float = 0.0,
    unsafe: bool = False,
    progress: Progress | None = None,
) -> ExportReport:
    """Exports `model` to one .tflite file per precision and validates each.

    Example:

    ```python
    report = edgeopt.export_tflite(model, ["float32", "int8"], output_dir="out",
                                   calibration_data=x_train[:200], eval_data=(x_test, y_test))
    print(report["int8"].validation["accuracy"])
    ```

    Args:
        model: a Keras 3 or tf_keras model, or a path to a `.keras`/`.h5` file or a
            SavedModel directory. It is not modified.
        precisions: any of `float32`, `float16`, `dynamic`, `int8`, `int16x8`, `int4`.
            Defaults to `("float32",)`.
        output_dir: where `<name>.<precision>.tflite` and `export_report.json` go.
            Defaults to `"."`.
        calibration_data: representative samples for `int8`/`int16x8`: an array, an
            `(x, y)` pair, an `.npz`/`.npy` path, an image directory or a callable.
            Defaults to `None`.
        eval_data: samples (and labels) to validate every file on. Defaults to `None`.
        calibration_samples: at most this many calibration samples are used.
            Defaults to `200`.
        io_dtype: input/output type of `int8` models: `int8`, `uint8` or `float32`.
            Defaults to `"int8"`.
        max_accuracy_drop: reject a file whose accuracy is more than this many points
            below the float model's (needs labelled `eval_data`); it is kept as
            `<file>.rejected` and `AccuracyGateError` is raised after all precisions ran.
            Defaults to `None`.
        name: stem of the output files. Defaults to the model's name or file stem.
        scale: image directories become `(pixel - mean) / scale`. Defaults to `255.0`.
        mean: see `scale`. Defaults to `0.0`.
        unsafe: allow a model file that runs Python code as it loads (Lambda layers)
            and SavedModel directories (their graph runs). Defaults to `False`.
        progress: called with one line per step. Defaults to `None`.

    Returns:
        An `ExportReport`, also written as `export_report.json`.

    Raises:
        ConfigError: bad arguments or data, found before any conversion starts.
        ConversionError: a precision failed (the others are still written).
        AccuracyGateError: a precision fell below `max_accuracy_drop`.
    """
    started = time.perf_counter()
    say = progress or (lambda line: None)
    precisions = parse_precisions(precisions)
    io_dtype = validate_export_args(calibration_samples=calibration_samples, io_dtype=io_dtype,
                                    max_accuracy_drop=max_accuracy_drop)
    if name is not None:
        _check_stem(name)
    source = open_source(model, unsafe=unsafe)
    needs_calibration = [str(p) for p in precisions if p.needs_calibration
                         and not (p is Precision.INT8 and source.quantization_aware)]
    if needs_calibration and calibration_data is None:
        raise ConfigError(
            f"{' and '.join(needs_calibration)} need calibration data (representative inputs). "
            "Received: no calibration data. Pass --calibration-data calib.npz (array x) on the CLI, "
            "or calibration_data=x_train[:200] in Python."
        )
    if max_accuracy_drop is not None and eval_data is None:
        raise ConfigError(
            f"max_accuracy_drop needs labelled evaluation data. Received: max_accuracy_drop={max_accuracy_drop} "
            "and no eval data. Pass --eval-data test.npz (arrays x and y)."
        )
    stem = _check_stem(name or getattr(source, "name", None) or "model")
    output_dir = ensure_writable_dir(output_dir)
    calibration = None
    if calibration_data is not None:
        calibration = load_dataset(calibration_data, source.input_info, what="calibration data", scale=scale, mean=mean)
        calibration = calibration.subset(calibration_samples)
    evaluation = None
    if eval_data is not None:
        evaluation = load_dataset(eval_data, source.input_info, what="eval data", scale=scale, mean=mean)
        if max_accuracy_drop is not None and evaluation.y is None:
            raise ConfigError(
                f"max_accuracy_drop needs labels in the eval data. Received: no 'y' in {evaluation.origin}. "
                "Save the eval data with np.savez(path, x=..., y=...)."
            )

    reference = None
    if evaluation is not None:
        say(f"running the float model on {len(evaluation)} eval samples")
        reference_out = source.predict(evaluation.x)
        reference = {"samples": len(evaluation), "accuracy": None}
        if evaluation.y is not None and reference_out.ndim == 2 and reference_out.shape[1] > 1:
            evaluation.y = check_labels(evaluation.y, reference_out.shape[1], origin=evaluation.origin)
            reference["accuracy"] = float(np.mean(reference_out.argmax(axis=1) == evaluation.y))
    check_x = _check_samples(source, evaluation, calibration)

    entries: list[ExportEntry] = []
    with _scratch_dir() as tmp:
        say(f"tracing {source.description} once to a SavedModel")
        saved_model = str(source.export_saved_model(Path(tmp) / "saved_model"))
        float_bytes = float_settings = None
        float_check = None
        for precision in [Precision.FLOAT32] + [p for p in precisions if p is not Precision.FLOAT32]:
            t0 = time.perf_counter()
            try:
                if precision is Precision.FLOAT32:
                    say("converting float32 (TFLite converter)")
                    float_bytes, float_settings = engines.convert_saved_model(saved_model, precision)
                    float_check = TfliteRunner(float_bytes).run(check_x) if check_x is not None else None
                    if precision not in precisions:
                        continue
                    data, settings = float_bytes, float_settings
                else:
                    data, settings = _convert(precision, saved_model, float_bytes, float_check, check_x,
                                              calibration, io_dtype, say, source.quantization_aware)
            except EdgeoptError as exc:
                if precision is Precision.FLOAT32:
                    raise
                entries.append(ExportEntry(precision=str(precision), status="failed", path=None, error=str(exc),
                                           seconds=round(time.perf_counter() - t0, 3)))
                say(f"{precision}: FAILED: {exc}")
                continue
            entry = _finish(data, settings, precision, evaluation, reference_out if evaluation is not None else None,
                            max_accuracy_drop, output_dir / f"{stem}.{precision}.tflite", say)
            entry.seconds = round(time.perf_counter() - t0, 3)
            entries.append(entry)

    order = {str(p): i for i, p in enumerate(precisions)}
    entries.sort(key=lambda e: order[e.precision])
    report = ExportReport(
        model=stem,
        source=source.description,
        input={"name": source.input_info.name, "shape": list(source.input_info.shape), "dtype": source.input_info.dtype},
        output_dir=str(output_dir),
        entries=entries,
        reference=reference,
        versions=versions(),
        seconds=round(time.perf_counter() - started, 3),
    )
    atomic_write_json(report.path, report.to_dict())
    say(f"wrote {report.path}")
    failed = [e for e in entries if e.status == "failed"]
    rejected = [e for e in entries if e.status == "rejected"]
    if failed:
        error = ConversionError(
            f"{len(failed)} of {len(entries)} precisions failed: "
            + "; ".join(f"{e.precision}: {e.error}" for e in failed)
        )
        error.report = report
        raise error
    if rejected:
        error = AccuracyGateError(
            f"{', '.join(e.precision for e in rejected)} lost more than {max_accuracy_drop} accuracy points. "
            "Received: "
            + ", ".join(f"{e.precision} drop {e.validation['accuracy_drop_points']:.2f}" for e in rejected)
            + f". Files kept as *.rejected in {output_dir}; raise max_accuracy_drop or try QAT/another precision."
        )
        error.report = report
        raise error
    return report


def _check_stem(stem: Any) -> str:
    """`stem` if it names a file inside the output directory: no separators, not `..`."""
    text = str(stem)
    if not text or text in (".", "..") or any(c in text for c in ("/", "\\", "\0", os.sep)):
        raise ConfigError(
            "The output name must be a plain file stem, without directories. "
            f"Received: name={text!r}. Pass a name like 'model' (use --output to choose the directory)."
        )
    return text


@contextlib.contextmanager
def _scratch_dir():
    """A temporary directory for the traced SavedModel; a full or read-only temp dir is one error."""
    try:
        scratch = tempfile.TemporaryDirectory(prefix="edgeopt-export-")
    except OSError as exc:
        raise OutputError(
            f"Cannot create a temporary directory: {exc.strerror or exc}. Received: TMPDIR={tempfile.gettempdir()!r}. "
            "Free some space there or point TMPDIR at a writable directory.", path=tempfile.gettempdir(),
            errno=exc.errno,
        ) from exc
    with scratch as tmp:
        yield tmp


def _check_samples(source: ModelSource, evaluation: Dataset | None, calibration: Dataset | None):
    """A few inputs to check ai-edge-quantizer results on: real data, else random normal."""
    for data in (evaluation, calibration):
        if data is not None:
            return data.x[:_CHECK_SAMPLES]
    shape = source.input_info.shape
    if any(d is None for d in shape[1:]) or np.dtype(source.input_info.dtype).kind != "f":
        return None
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, *shape[1:])).astype(source.input_info.dtype)


def _convert(precision, saved_model, float_bytes, float_check, check_x, calibration, io_dtype, say, qat):
    if precision in engines.QUANTIZER_PRECISIONS:
        say(f"quantizing {precision} (ai-edge-quantizer, from the float32 model)")
        try:
            data, settings = engines.quantize_tflite(float_bytes, precision)
        except ConversionError as exc:
            if precision is Precision.INT4:
                raise
            data, settings, problem = None, None, str(exc)
        else:
            problem = _disagreement(data, float_check, check_x)
        if problem is None:
            return data, settings
        if precision is Precision.INT4:  # no converter equivalent: keep it, the validation shows the cost
            settings["check"] = problem
            return data, settings
        say(f"{precision}: ai-edge-quantizer result rejected ({problem}); using the TFLite converter")
        data, settings = engines.convert_saved_model(saved_model, precision)
        settings["fallback_reason"] = problem
        return data, settings
    samples = calibration.x if calibration is not None else None
    if qat and precision is Precision.INT8:
        # The learned fake-quant ranges set the scales; calibration would override them.
        say("converting int8 from the quantization-aware model's learned ranges (TFLite converter)")
        data, settings = engines.convert_saved_model(saved_model, precision, io_dtype=io_dtype, learned_ranges=True)
        return data, settings
    what = f" (calibrating on {len(samples)} samples)" if samples is not None and precision.needs_calibration else ""
    say(f"converting {precision}{what} (TFLite converter)")
    return engines.convert_saved_model(saved_model, precision, calibration=samples, io_dtype=io_dtype)


def _disagreement(data: bytes, float_check, check_x) -> str | None:
    """Why an ai-edge-quantizer result differs too much from the float32 .tflite, or None."""
    if check_x is None:
        return None
    result = compare_outputs(TfliteRunner(data).run(check_x), float_check)
    if result.top1_agreement is not None:
        if result.top1_agreement < _MIN_AGREEMENT:
            return f"top-1 agreement with float32 {result.top1_agreement:.2f} < {_MIN_AGREEMENT}"
        return None
    spread = float(np.abs(float_check).max()) or 1.0
    if result.mean_abs_error / spread > _MAX_RELATIVE_ERROR:
        return f"mean error {result.mean_abs_error:.3g} is over {_MAX_RELATIVE_ERROR:.0%} of the output range"
    return None


def _finish(data, settings, precision, evaluation, reference_out, max_accuracy_drop, path: Path, say) -> ExportEntry:
    info = inspect_tflite(data)
    validation = None
    status = "ok"
    if evaluation is not None:
        say(f"validating {precision} in LiteRT on {len(evaluation)} samples")
        result = compare_outputs(TfliteRunner(data).run(evaluation.x), reference_out, evaluation.y)
        validation = result.to_dict()
        if max_accuracy_drop is not None and result.accuracy_drop_points is not None:
            if result.accuracy_drop_points > max_accuracy_drop:
                status = "rejected"
                path = path.with_name(path.name + ".rejected")
    atomic_write_bytes(path, data)
    say(f"{precision}: {info.size_bytes} bytes -> {path}" + (" (REJECTED)" if status == "rejected" else ""))
    return ExportEntry(
        precision=str(precision),
        status=status,
        path=str(path),
        sha256=info.sha256,
        size_bytes=info.size_bytes,
        gzip_size_bytes=info.gzip_size_bytes,
        input_dtype=info.inputs[0].dtype if info.inputs else None,
        output_dtype=info.outputs[0].dtype if info.outputs else None,
        op_counts=info.op_counts,
        float_ops=info.float_ops,
        fully_integer=info.fully_integer,
        validation=validation,
        settings=settings,
    )
