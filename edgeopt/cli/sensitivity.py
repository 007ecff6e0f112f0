"""`edgeopt sensitivity`: the accuracy cost of quantizing each op alone."""

from __future__ import annotations

import inspect

import click

from edgeopt.cli._options import json_option, out_option, quiet_option, unsafe_option
from edgeopt.cli._output import echo_json, fmt_pct, progress_printer, shorten, table
from edgeopt.convert.sensitivity import SCHEMES, quantization_sensitivity

# The flags' defaults are quantization_sensitivity's: one source of truth.
_DEFAULTS = {name: p.default for name, p in inspect.signature(quantization_sensitivity).parameters.items()}
_TOP = 15  # rows on one screen; --json has all of them


@click.command()
@click.argument("model", type=click.Path())
@click.option("--calibration-data", required=True,
              help="Representative inputs: .npz (x), .npy, image dir, or package.module:function.")
@click.option("--eval-data", required=True, help="Labelled data: .npz with x and y (class indices), or an image dir.")
@click.option("-s", "--scheme", "schemes", multiple=True, default=[str(s) for s in _DEFAULTS["schemes"]],
              show_default=True, type=click.Choice([str(s) for s in SCHEMES]), help="Repeat for several schemes.")
@click.option("--calibration-samples", type=click.IntRange(min=1), default=_DEFAULTS["calibration_samples"],
              show_default=True)
@out_option("output_dir", "Write sensitivity.json and sensitivity.png (bar chart) here.", default=None)
@click.option("--scale", type=float, default=_DEFAULTS["scale"], show_default=True,
              help="Images become (pixel - mean) / scale.")
@click.option("--mean", type=float, default=_DEFAULTS["mean"], show_default=True)
@unsafe_option
@json_option("the sensitivity of every op")
@quiet_option
def sensitivity(model, calibration_data, eval_data, schemes, calibration_samples, output_dir, scale, mean, unsafe,
                as_json, quiet):
    """Quantize each op of MODEL alone (int8, int4 weight-only, int16x8) and show what it costs.

    Per op: the accuracy drop on --eval-data (points) and the SNR (dB) of the op's own
    output against the float model, most sensitive op first (ai-edge-quantizer, one op
    quantized at a time), and the SNR of the op in the TFLite converter's int8 model
    (its QuantizationDebugger). The ops at the top are
    the ones `edgeopt export --precision auto` keeps at higher precision.

    \b
    Example:
        edgeopt sensitivity model.keras --calibration-data calib.npz \\
            --eval-data test.npz --out sens/
        edgeopt export model.keras -p auto --max-accuracy-drop 1.0 \\
            --calibration-data calib.npz --eval-data test.npz
    """
    result = quantization_sensitivity(
        model, calibration_data, eval_data, schemes=list(schemes), calibration_samples=calibration_samples,
        output_dir=output_dir, scale=scale, mean=mean, unsafe=unsafe, progress=progress_printer(not quiet))
    if as_json:
        echo_json(result.to_dict())
        return
    headers = ["#", "op type", "weights", "op"]
    for scheme in result.schemes:
        headers += [f"{scheme} pts", f"{scheme} dB"]
    if result.has_converter_column:
        headers.append("int8 conv dB")
    rows = result.table_rows()
    click.echo(table(headers, [[r[0], r[1], r[2], shorten(r[3], 28), *r[4:]] for r in rows[:_TOP]]))
    click.echo("pts: accuracy drop with only that op quantized; dB: SNR of the op's output (conv: the TFLite "
               "converter's int8).")
    if len(rows) > _TOP:
        click.echo(f"... {len(rows) - _TOP} more ops (--json lists all)")
    worst = result.most_sensitive()
    click.echo(f"Most sensitive: op {worst.index} ({worst.op_type}), {worst.precision} alone costs "
               f"{worst.accuracy_drop_points:+.2f} points." if worst.accuracy_drop_points is not None else
               f"Most sensitive: op {worst.index} ({worst.op_type}): {worst.error}")
    click.echo(f"Float model accuracy: {fmt_pct(result.reference_accuracy)} (float32 .tflite "
               f"{fmt_pct(result.float_accuracy)}) on {result.samples} samples; {result.seconds:.1f} s.")
    if output_dir:
        click.echo(f"Wrote {output_dir}/sensitivity.json and sensitivity.png")
