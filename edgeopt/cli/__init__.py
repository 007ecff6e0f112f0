"""The `edgeopt` command line: thin commands over the library, one file per group."""

from __future__ import annotations

import os

import click

from edgeopt import __version__
from edgeopt.errors import EdgeoptError


class _Group(click.Group):
    """Turns every `EdgeoptError` into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgeoptError as exc:
            raise click.ClickException(" ".join(str(exc).split())) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeopt")
def cli() -> None:
    """edgeopt: train, compress, export and measure Keras models for edge devices.

    \b
    Example:
        edgeopt run recipes/digits_cnn.yaml
        edgeopt export model.keras --precision float32 --precision int8 \\
            --calibration-data calib.npz --eval-data test.npz --output out/
        edgeopt inspect out/model.int8.tflite
        edgeopt bench out/model.int8.tflite --device local --device rpi4
    """


def _register() -> None:
    from edgeopt.cli.bench import bench
    from edgeopt.cli.devices import devices
    from edgeopt.cli.export import export
    from edgeopt.cli.inspect import inspect
    from edgeopt.cli.run import compare, report, run

    for command in (run, export, inspect, bench, devices, report, compare):
        cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point: quiet TensorFlow's C++ logging unless asked otherwise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli(prog_name="edgeopt")
