"""`export_tflite`: one Keras model (or SavedModel) to .tflite files at several precisions.

A thin public function over a small exporter object (as Keras's own
`keras/src/export/litert.py` is): the exporter holds the model source, the data, the
float model's reference outputs and the progress callback. It traces the model once
into a SavedModel (from the model's real signature: fixed batch sizes, several
inputs and outputs, called subclassed models), hands the conversions to a child
process (`edgeopt.convert.isolation`: a converter segfault or a LiteRT abort fails
that precision only), then validates every file against the float model output by
output, writes it under a temporary name and renames it, and writes the report.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeopt._files import atomic_write_bytes, atomic_write_json, ensure_writable_dir
from edgeopt._versions import versions
from edgeopt.convert import isolation
from edgeopt.convert.arguments import validate_export_args
from edgeopt.convert.auto_latency import auto_latency
from edgeopt.convert.calibration import Dataset, load_dataset
from edgeopt.convert.inspect import inspect_tflite
from edgeopt.convert.job import Job
from edgeopt.convert.precision import IODtype, Precision, parse_precisions
from edgeopt.convert.report import REPORT_NAME, ExportEntry, ExportReport
from edgeopt.convert.source import ModelSource, open_source
from edgeopt.convert.validate import Labels, compare_output, compare_outputs, disagreement, match_labels
from edgeopt.errors import AccuracyGateError, ConfigError, ConversionError, OutputError

__all__ = ["REPORT_NAME", "ExportEntry", "ExportReport", "export_tflite"]

_CHECK_SAMPLES = 32

Progress = Callable[[str], None]


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
    select_tf_ops: bool = False,
    timeout_s: float = 1800.0,
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
        model: a Keras 3 or tf_keras model (functional, Sequential, or subclassed and
            called once), or a path to a `.keras`/`.h5` file or a SavedModel
            directory. It is not modified.
        precisions: any of `float32`, `float16`, `dynamic`, `int8`, `int16x8`, `int4`,
            `auto` (per op the smallest of int4 / int8 / int16x8 / float32 within
            `max_accuracy_drop`, see `edgeopt.convert.auto_precision`; needs
            calibration and labelled eval data). Defaults to `("float32",)`.
        output_dir: where `<name>.<precision>.tflite` and `export_report.json` go.
            Defaults to `"."`.
        calibration_data: representative samples for `int8`/`int16x8`: an array, an
            `(x, y)` pair, an `.npz`/`.npy` path, an image directory or a callable.
            For several inputs, a tuple of arrays in input order or a dict by input
            name. Defaults to `None`.
        eval_data: samples and labels to validate every file on, as
            `calibration_data`; labels of several outputs are a tuple in output order
            or a dict by output name (class indices, dense masks, one-hot rows or
            target values). Defaults to `None`.
        calibration_samples: at most this many calibration samples are used.
            Defaults to `200`.
        io_dtype: input/output type of `int8` models: `int8`, `uint8` or `float32`.
            Defaults to `"int8"`.
        max_accuracy_drop: reject a file whose accuracy (on any output) is more than
            this many points below the float model's (needs labelled `eval_data`); it
            is kept as `<file>.rejected` and `AccuracyGateError` is raised after all
            precisions ran. It is also `auto`'s budget. Defaults to `None`.
        name: stem of the output files. Defaults to the model's name or file stem.
        scale: image directories become `(pixel - mean) / scale`. Defaults to `255.0`.
        mean: see `scale`. Defaults to `0.0`.
        unsafe: allow a model file that runs Python code as it loads (Lambda layers)
            and SavedModel directories (their graph runs). Defaults to `False`.
        select_tf_ops: let the converter keep TensorFlow ops that have no TFLite
            builtin (Select TF / Flex ops, e.g. the TensorList ops of an RNN with a
            free batch size). The files then need the Flex delegate on the device and
            cannot be validated by this LiteRT; the report records the choice.
            Defaults to `False`.
        timeout_s: a precision whose conversion and validation take longer fails
            (its process is killed). Defaults to `1800.0`.
        progress: called with one line per step. Defaults to `None`.

    Returns:
        An `ExportReport`, also written as `export_report.json`.

    Raises:
        ConfigError: bad arguments or data, found before any conversion starts.
        ConversionError: a precision failed (the others are still written, and the
            report is in `error.report`).
        AccuracyGateError: a precision fell below `max_accuracy_drop`.
    """
    exporter = _Exporter(
        model, precisions, output_dir=output_dir, calibration_data=calibration_data, eval_data=eval_data,
        calibration_samples=calibration_samples, io_dtype=io_dtype, max_accuracy_drop=max_accuracy_drop,
        name=name, scale=scale, mean=mean, unsafe=unsafe, select_tf_ops=select_tf_ops, timeout_s=timeout_s,
        progress=progress,
    )
    return exporter.export()


class _Exporter:
    """One export: checks everything given, then `export()` makes, validates and writes the files."""

    def __init__(self, model, precisions, *, output_dir, calibration_data, eval_data, calibration_samples,
                 io_dtype, max_accuracy_drop, name, scale, mean, unsafe, select_tf_ops, timeout_s, progress):
        self.started = time.perf_counter()
        self.say: Progress = progress or (lambda line: None)
        self.precisions = parse_precisions(precisions)
        self.io_dtype = validate_export_args(calibration_samples=calibration_samples, io_dtype=io_dtype,
                                             max_accuracy_drop=max_accuracy_drop, select_tf_ops=select_tf_ops,
                                             timeout_s=timeout_s, precisions=self.precisions)
        if name is not None:
            _check_stem(name)
        self.max_accuracy_drop, self.select_tf_ops, self.timeout_s = max_accuracy_drop, bool(select_tf_ops), timeout_s
        self.source: ModelSource = open_source(model, unsafe=unsafe)
        needs = [str(p) for p in self.precisions if p.needs_calibration
                 and not (p is Precision.INT8 and self.source.quantization_aware)]
        if needs and calibration_data is None:
            raise ConfigError(
                f"{' and '.join(needs)} need calibration data (representative inputs). "
                "Received: no calibration data. Pass --calibration-data calib.npz (array x) on the CLI, "
                "or calibration_data=x_train[:200] in Python."
            )
        if max_accuracy_drop is not None and eval_data is None:
            raise ConfigError(
                f"max_accuracy_drop needs labelled evaluation data. Received: max_accuracy_drop={max_accuracy_drop} "
                "and no eval data. Pass --eval-data test.npz (arrays x and y)."
            )
        self.stem = _check_stem(name or getattr(self.source, "name", None) or "model")
        self.output_dir = ensure_writable_dir(output_dir)
        inputs = self.source.inputs
        self.calibration: Dataset | None = None
        if calibration_data is not None:
            self.calibration = load_dataset(calibration_data, inputs, what="calibration data", scale=scale, mean=mean)
            self.calibration = self.calibration.subset(calibration_samples)
        self.evaluation: Dataset | None = None
        if eval_data is not None:
            self.evaluation = load_dataset(eval_data, inputs, what="eval data", scale=scale, mean=mean)
            if max_accuracy_drop is not None and self.evaluation.y is None:
                raise ConfigError(
                    f"max_accuracy_drop needs labels in the eval data. Received: no 'y' in {self.evaluation.origin}. "
                    "Save the eval data with np.savez(path, x=..., y=...)."
                )
        self.reference: list[np.ndarray] | None = None
        self.labels: list[Labels] = []

    def export(self) -> ExportReport:
        with _scratch_dir() as tmp:
            worker = isolation.acquire()  # a new child's TensorFlow import overlaps the float model and the tracing
            try:
                reference = self._run_reference()
                job = self._job(Path(tmp))
            except BaseException:
                isolation.release(worker)
                raise
            isolation.convert_isolated(job, worker, timeout_s=self.timeout_s, say=self.say)
            entries = [self._entry(job, precision) for precision in self.precisions]
        report = self._report(entries, reference)
        atomic_write_json(report.path, report.to_dict())
        self.say(f"wrote {report.path}")
        for line in report.warnings:
            warnings.warn(line, stacklevel=3)
        self._raise_for(report)
        return report

    def _run_reference(self) -> dict | None:
        """The float model's outputs on the eval samples, and the labels matched to them."""
        if self.evaluation is None:
            return None
        self.say(f"running the float model on {len(self.evaluation)} eval samples")
        self.reference = self.source.predict_all(self.evaluation.inputs)
        names = self.source.output_names
        labels = _labels_per_output(self.evaluation.y, names, self.evaluation.origin)
        self.labels = [match_labels(y, r, name=n, origin=self.evaluation.origin)
                       for y, r, n in zip(labels, self.reference, names)]
        outputs = [compare_output(r, r, lab, n) for r, lab, n in zip(self.reference, self.labels, names)]
        accuracy = next((o.reference_accuracy for o in outputs if o.reference_accuracy is not None), None)
        return {"samples": len(self.evaluation), "accuracy": accuracy,
                "outputs": [{"name": o.name, "kind": o.kind, "accuracy": o.reference_accuracy,
                             "mean_iou": o.reference_mean_iou,
                             "target_mean_abs_error": o.reference_target_mean_abs_error} for o in outputs]}

    def _job(self, tmp: Path) -> Job:
        self.say(f"tracing {self.source.description} once to a SavedModel")
        saved_model = self.source.export_saved_model(tmp / "saved_model")
        job = Job(saved_model=str(Path(saved_model).resolve()), precisions=[str(p) for p in self.precisions],
                  inputs=[i.name for i in self.source.inputs], outputs=list(self.source.output_names),
                  batch_size=self.source.batch_size, io_dtype=str(self.io_dtype),
                  quantization_aware=self.source.quantization_aware, select_tf_ops=self.select_tf_ops,
                  output_kinds=[lab.kind for lab in self.labels] or None, directory=str(tmp),
                  max_accuracy_drop=self.max_accuracy_drop)
        if Precision.AUTO in self.precisions:
            if not any(lab.y is not None and lab.kind != "values" for lab in self.labels):
                raise ConfigError("precision auto needs class labels to measure accuracy on. Received: eval labels "
                                  f"that give no accuracy ({', '.join(lab.kind for lab in self.labels)} outputs). "
                                  "Pass class indices as y, or use a uniform precision.")
            job.write_samples("reference", self.reference)
            job.write_labels(self.labels)
            job.has_reference = True
        check = self._check_samples()
        for kind, arrays in (("calibration", self.calibration and self.calibration.inputs),
                             ("eval", self.evaluation and self.evaluation.inputs), ("check", check)):
            if arrays:
                job.write_samples(kind, arrays)
                setattr(job, f"has_{kind}", True)
        return job

    def _check_samples(self) -> list[np.ndarray] | None:
        """A few inputs to check ai-edge-quantizer results on: real data, else random normal."""
        for data in (self.evaluation, self.calibration):
            if data is not None:
                return data.head(_CHECK_SAMPLES)
        inputs = self.source.inputs
        if any(d is None for i in inputs for d in i.shape[1:]) or any(np.dtype(i.dtype).kind != "f" for i in inputs):
            return None
        rng = np.random.default_rng(0)
        return [rng.standard_normal((8, *i.shape[1:])).astype(i.dtype) for i in inputs]

    def _entry(self, job: Job, precision: Precision) -> ExportEntry:
        name = str(precision)
        result = job.read_result(name)
        if result["status"] != "ok":
            self.say(f"{name}: FAILED: {result['error']}")
            return ExportEntry(precision=name, status="failed", path=None, error=result["error"],
                               settings=result.get("settings") or {}, seconds=result.get("seconds", 0.0),
                               stderr_tail=result.get("stderr_tail"))
        data = job.model_path(name).read_bytes()
        info = inspect_tflite(data)
        settings = dict(result["settings"])
        entry = ExportEntry(
            precision=name, status="ok", path=None, sha256=info.sha256, size_bytes=info.size_bytes,
            gzip_size_bytes=info.gzip_size_bytes, input_dtype=info.inputs[0].dtype if info.inputs else None,
            output_dtype=info.outputs[0].dtype if info.outputs else None, op_counts=info.op_counts,
            float_ops=info.float_ops, fully_integer=info.fully_integer, settings=settings,
            seconds=result.get("seconds", 0.0),
        )
        path = self.output_dir / f"{self.stem}.{name}.tflite"
        problem = settings.get("check")
        if result.get("not_validated"):
            entry.warning = f"not validated: {result['not_validated']}"
        elif self.evaluation is not None:
            validation = compare_outputs(job.read_outputs(name, "eval"), self.reference, self.labels,
                                         self.source.output_names)
            entry.validation = validation.to_dict()
            problem = problem or disagreement(validation, against="the Keras model")
            drop = validation.accuracy_drop_points
            if self.max_accuracy_drop is not None and drop is not None and drop > self.max_accuracy_drop:
                entry.status = "rejected"
                path = path.with_name(path.name + ".rejected")
        if precision is Precision.INT4 and problem:
            entry.warning = (f"int4 is far from the float model ({problem}), even after the per-op fallback. "
                             "Check its accuracy on real data before shipping it, or use dynamic, int8 or auto.")
        elif precision is Precision.INT4 and settings.get("fallback_reason"):
            fallback = settings.get("per_op_fallback")
            entry.warning = (f"int4 fell back ({settings['fallback_reason']}): "
                             + (", ".join(f"op {f['index']} at {f['precision']}" for f in fallback) + ", int4 elsewhere"
                                if fallback else str(settings.get("weights"))) + ".")
        atomic_write_bytes(path, data)
        entry.path = str(path)
        if precision is Precision.AUTO:
            entry.settings["latency"] = auto_latency(path, job.model_path("auto.int8"), self.stem)
        self.say(f"{name}: {info.size_bytes} bytes -> {path}" + (" (REJECTED)" if entry.status == "rejected" else ""))
        if entry.warning:
            self.say(f"{name}: WARNING: {entry.warning}")
        return entry

    def _report(self, entries: list[ExportEntry], reference: dict | None) -> ExportReport:
        inputs = [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype} for i in self.source.inputs]
        return ExportReport(
            model=self.stem, source=self.source.description, input=inputs[0], output_dir=str(self.output_dir),
            entries=entries, reference=reference, versions=versions(),
            seconds=round(time.perf_counter() - self.started, 3), inputs=inputs,
            outputs=list(self.source.output_names), select_tf_ops=self.select_tf_ops,
        )

    def _raise_for(self, report: ExportReport) -> None:
        failed = [e for e in report.entries if e.status == "failed"]
        rejected = [e for e in report.entries if e.status == "rejected"]
        if failed:
            raise ConversionError(
                f"{len(failed)} of {len(report.entries)} precisions failed: "
                + "; ".join(f"{e.precision}: {e.error}" for e in failed), report=report)
        if rejected:
            raise AccuracyGateError(
                f"{', '.join(e.precision for e in rejected)} lost more than {self.max_accuracy_drop} accuracy "
                "points. Received: "
                + ", ".join(f"{e.precision} drop {e.validation['accuracy_drop_points']:.2f}" for e in rejected)
                + f". Files kept as *.rejected in {self.output_dir}; raise max_accuracy_drop or try QAT/another "
                "precision.", report=report)


def _labels_per_output(y, names: list[str], origin: str) -> list:
    """The labels of each output, in output order (None where there are none)."""
    if y is None:
        return [None] * len(names)
    if isinstance(y, dict):
        unknown = sorted(set(y) - set(names))
        if unknown:
            raise ConfigError(f"The eval labels name outputs the model does not have. Received: {unknown} from "
                              f"{origin}. Key them by the output names: {', '.join(names)}.")
        return [y.get(n) for n in names]
    if isinstance(y, tuple):
        if len(y) != len(names):
            raise ConfigError(f"The model has {len(names)} outputs ({', '.join(names)}) but the eval data has "
                              f"{len(y)} label arrays. Received: {len(y)} from {origin}. Give one per output, in "
                              "order (None for an output without labels), or a dict keyed by output name.")
        return list(y)
    if len(names) > 1:
        raise ConfigError(f"The model has {len(names)} outputs ({', '.join(names)}) but the eval data has one "
                          f"label array. Received: y of shape {np.shape(y)} from {origin}. Give a tuple of label "
                          "arrays in output order (None for an output without labels), or a dict keyed by name.")
    return [y]


def _check_stem(stem: Any) -> str:
    """`stem` if it names a file inside the output directory: no separators, not `..`."""
    text = str(stem)
    if not text or text in (".", "..") or any(c in text for c in ("/", "\\", "\0", os.sep)):
        raise ConfigError(
            "The output name must be a plain file stem, without directories. "
            f"Received: name={text!r}. Pass a name like 'model' (use --out to choose the directory)."
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
