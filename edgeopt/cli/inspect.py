"""`edgeopt inspect`: what is inside a .tflite file, without running it."""

from __future__ import annotations

import click

from edgeopt.cli._options import json_option
from edgeopt.cli._output import echo_json, fmt_bytes, shorten, table


@click.command()
@click.argument("model", type=click.Path())
@json_option("everything")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the largest parameter tensors to list.")
def inspect(model, as_json, top):
    """Show MODEL's tensors, quantization, ops, fused activations and parameter bytes.

    The file is checked and parsed without an interpreter, so a broken file gives an
    error message rather than a crash.

    \b
    Example:
        edgeopt inspect out/model.int8.tflite
        edgeopt inspect out/model.int8.tflite --json | jq .float_ops
    """
    from edgeopt.convert.inspect import inspect_tflite

    info = inspect_tflite(model)
    if as_json:
        echo_json(info.to_dict())
        return
    click.echo(f"{info.path}: {fmt_bytes(info.size_bytes)} ({info.size_bytes} bytes), gzip {fmt_bytes(info.gzip_size_bytes)}, "
               f"sha256 {info.sha256[:12]}")
    click.echo(f"fully integer: {'yes' if info.fully_integer else 'no'}; integer I/O: {'yes' if info.integer_io else 'no'}")
    rows = []
    for role, tensors in (("input", info.inputs), ("output", info.outputs)):
        for t in tensors:
            quant = ""
            if t.scale:
                quant = f"scale={t.scale[0]:.6g} zero_point={t.zero_point[0] if t.zero_point else 0}"
            rows.append([role, shorten(t.name), str(t.shape), t.dtype, quant])
    click.echo("\n" + table(["", "tensor", "shape", "dtype", "quantization"], rows))
    click.echo("\n" + table(["op", "count", "float"], [[op, n, info.float_ops.get(op, "")] for op, n in info.op_counts.items()]))
    if info.fused_activations:
        click.echo("\nfused activations: " + ", ".join(f"{k} x{v}" for k, v in info.fused_activations.items()))
    if info.float_ops:
        click.echo("ops computing in float: " + ", ".join(f"{k} x{v}" for k, v in info.float_ops.items()))
    click.echo(f"\nparameters: {fmt_bytes(info.parameter_bytes)} in {len(info.parameters)} tensors "
               f"({', '.join(f'{k}: {v}' for k, v in info.weight_dtypes.items())})")
    if top:
        click.echo(table(["tensor", "shape", "dtype", "bytes"],
                         [[shorten(p.name), str(p.shape), p.dtype, p.size_bytes] for p in info.parameters[:top]]))
