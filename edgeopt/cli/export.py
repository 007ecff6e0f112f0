"""`edgeopt export`: a Keras model or SavedModel to validated .tflite files."""

from __future__ import annotations

import inspect

import click

from edgeopt.cli._options import json_option, out_option, quiet_option, unsafe_option
from edgeopt.cli._output import auto_summary, echo_json, fmt_bytes, fmt_pct, progress_printer, table
from edgeopt.convert.exporter import export_tflite
from edgeopt.convert.precision import IODtype, Precision
from edgeopt.errors import ConversionError

# The flags' defaults are export_tflite's: one source of truth.
_DEFAULTS = {name: p.default for name, p in inspect.signature(export_tflite).parameters.items()}


@click.command()
@click.argument("model", type=click.Path())
@click.option("-p", "--precision", "precisions", multiple=True, default=[str(p) for p in _DEFAULTS["precisions"]],
              show_default=True, type=click.Choice([p.value for p in Precision]), help="Repeat for several precisions.")
@click.option("--calibration-data", help="Representative inputs: .npz (x), .npy, image dir, or package.module:function.")
@click.option("--calibration-samples", type=click.IntRange(min=1), default=_DEFAULTS["calibration_samples"],
              show_default=True)
@click.option("--eval-data", help="Validation data: .npz with x (and y for accuracy), .npy, image dir, or callable. "
              "Several inputs/outputs: x_<input>, y_<output> arrays.")
@click.option("--io-dtype", type=click.Choice([d.value for d in IODtype]), default=str(_DEFAULTS["io_dtype"]),
              show_default=True, help="Input/output type of int8 models.")
@click.option("--max-accuracy-drop", type=float, default=_DEFAULTS["max_accuracy_drop"],
              help="Reject (exit 1, keep as *.rejected) beyond this many points; -p auto's budget.")
@out_option("output", "Output directory.", default=str(_DEFAULTS["output_dir"]), show_default=True)
@click.option("--name", help="Stem of the output files (default: model file stem).")
@click.option("--scale", type=float, default=_DEFAULTS["scale"], show_default=True,
              help="Images become (pixel - mean) / scale.")
@click.option("--mean", type=float, default=_DEFAULTS["mean"], show_default=True)
@unsafe_option
@click.option("--select-tf-ops", is_flag=True, default=_DEFAULTS["select_tf_ops"],
              help="Keep TensorFlow ops without a TFLite builtin (Flex), e.g. an RNN's TensorList ops; "
              "the files then need the Flex delegate.")
@click.option("--timeout-s", type=click.FloatRange(min=0, min_open=True), default=_DEFAULTS["timeout_s"],
              show_default=True, help="A precision taking longer to convert and validate fails.")
@json_option("the export report")
@quiet_option
def export(model, precisions, calibration_data, calibration_samples, eval_data, io_dtype, max_accuracy_drop,
           output, name, scale, mean, unsafe, select_tf_ops, timeout_s, as_json, quiet):
    """Export MODEL (.keras, .h5 or SavedModel dir) to TFLite at one or more precisions.

    Writes <name>.<precision>.tflite per precision and export_report.json to --out.
    A precision that fails (even by crashing the converter) is reported; the others
    are still written.

    \b
    Example:
        edgeopt export model.keras -p float32 -p float16 -p int8 \\
            --calibration-data calib.npz --eval-data test.npz --out out/
        edgeopt export lstm.keras -p float32 --select-tf-ops
        edgeopt export model.keras -p auto --max-accuracy-drop 1.0 \\
            --calibration-data calib.npz --eval-data test.npz
    """
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the summary below shows every warning once
            report = export_tflite(
                model, list(precisions), output_dir=output, calibration_data=calibration_data,
                eval_data=eval_data, calibration_samples=calibration_samples, io_dtype=io_dtype,
                max_accuracy_drop=max_accuracy_drop, name=name, scale=scale, mean=mean, unsafe=unsafe,
                select_tf_ops=select_tf_ops, timeout_s=timeout_s, progress=progress_printer(not quiet),
            )
    except ConversionError as exc:
        if exc.report is not None:
            _show(exc.report, as_json)
        raise
    _show(report, as_json)


def _show(report, as_json: bool) -> None:
    if as_json:
        echo_json(report.to_dict())
        return
    rows = []
    for e in report.entries:
        v = e.validation or {}
        drop = v.get("accuracy_drop_points")
        rows.append([e.precision, e.status, fmt_bytes(e.size_bytes), fmt_bytes(e.gzip_size_bytes),
                     f"{e.input_dtype or ''}/{e.output_dtype or ''}", fmt_pct(v.get("accuracy")),
                     "" if drop is None else f"{drop:+.2f}", fmt_pct(v.get("top1_agreement")),
                     "" if not v else f"{v['max_abs_error']:.3g}", e.settings.get("tool", ""), e.path or e.error])
    click.echo(table(["precision", "status", "size", "gzip", "in/out", "accuracy", "drop pts", "agree",
                      "max err", "tool", "file"], rows))
    if len(report.outputs) > 1:
        _show_outputs(report)
    if report.reference and report.reference.get("accuracy") is not None:
        click.echo(f"Keras model accuracy: {fmt_pct(report.reference['accuracy'])} "
                   f"on {report.reference['samples']} samples")
    if report.select_tf_ops:
        click.echo("Select TF ops allowed (--select-tf-ops): files with Flex ops need the Flex delegate.")
    for e in report.entries:
        if "choices" in e.settings:
            click.echo(auto_summary(e.settings))
    for line in report.warnings:
        click.echo(f"Warning: {line}")
    click.echo(f"Report: {report.path}")


def _show_outputs(report) -> None:
    rows = []
    for e in report.entries:
        for o in (e.validation or {}).get("outputs", []):
            drop = o.get("accuracy_drop_points")
            rows.append([e.precision, o["name"], o["kind"], fmt_pct(o.get("top1_agreement")),
                         fmt_pct(o.get("accuracy")), "" if drop is None else f"{drop:+.2f}",
                         f"{o['mean_abs_error']:.3g}", f"{100 * o['relative_error']:.2f}%"])
    if rows:
        click.echo(table(["precision", "output", "kind", "agree", "accuracy", "drop pts", "mean err", "rel err"],
                         rows))
