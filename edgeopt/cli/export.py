"""`edgeopt export`: a Keras model or SavedModel to validated .tflite files."""

from __future__ import annotations

import click

from edgeopt.cli._options import unsafe_option
from edgeopt.cli._output import echo_json, fmt_bytes, fmt_pct, progress_printer, table
from edgeopt.convert.precision import IODtype, Precision
from edgeopt.errors import ConversionError


@click.command()
@click.argument("model", type=click.Path())
@click.option("-p", "--precision", "precisions", multiple=True, default=["float32"], show_default=True,
              type=click.Choice([p.value for p in Precision]), help="Repeat for several precisions.")
@click.option("--calibration-data", help="Representative inputs: .npz (x), .npy, image dir, or package.module:function.")
@click.option("--calibration-samples", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--eval-data", help="Validation data: .npz with x (and y for accuracy), .npy, image dir, or callable.")
@click.option("--io-dtype", type=click.Choice([d.value for d in IODtype]), default="int8", show_default=True,
              help="Input/output type of int8 models.")
@click.option("--max-accuracy-drop", type=float, help="Reject (exit 1, keep as *.rejected) beyond this many points.")
@click.option("-o", "--output", default=".", show_default=True, type=click.Path(), help="Output directory.")
@click.option("--name", help="Stem of the output files (default: model file stem).")
@click.option("--scale", type=float, default=255.0, show_default=True, help="Images become (pixel - mean) / scale.")
@click.option("--mean", type=float, default=0.0, show_default=True)
@unsafe_option
@click.option("--json", "as_json", is_flag=True, help="Print the export report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def export(model, precisions, calibration_data, calibration_samples, eval_data, io_dtype, max_accuracy_drop,
           output, name, scale, mean, unsafe, as_json, quiet):
    """Export MODEL (.keras, .h5 or SavedModel dir) to TFLite at one or more precisions.

    Writes <name>.<precision>.tflite per precision and export_report.json to --output.

    \b
    Example:
        edgeopt export model.keras -p float32 -p float16 -p int8 \\
            --calibration-data calib.npz --eval-data test.npz --output out/
    """
    from edgeopt.convert.exporter import export_tflite

    try:
        report = export_tflite(
            model, list(precisions), output_dir=output, calibration_data=calibration_data, eval_data=eval_data,
            calibration_samples=calibration_samples, io_dtype=io_dtype, max_accuracy_drop=max_accuracy_drop,
            name=name, scale=scale, mean=mean, unsafe=unsafe, progress=progress_printer(not quiet),
        )
    except ConversionError as exc:
        report = getattr(exc, "report", None)
        if report is not None:
            _show(report, as_json)
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
    if report.reference and report.reference.get("accuracy") is not None:
        click.echo(f"Keras model accuracy: {fmt_pct(report.reference['accuracy'])} "
                   f"on {report.reference['samples']} samples")
    click.echo(f"Report: {report.path}")
