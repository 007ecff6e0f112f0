"""The `edgeopt` command line: thin commands over the library, one file per group."""

from __future__ import annotations

import click

from edgeopt import __version__
from edgeopt.errors import EdgeoptError


class _Group(click.Group):
    """Turns every `EdgeoptError` into one line on stderr and exit code 1, and hides
    what TensorFlow's native code prints unless `--verbose`."""

    def invoke(self, ctx: click.Context):
        from edgeopt._quiet import hide_native_output, set_verbose

        set_verbose(bool(ctx.params.get("verbose")))  # before any command imports TensorFlow
        try:
            with hide_native_output() as hidden:
                try:
                    return super().invoke(ctx)
                except EdgeoptError as exc:
                    raise click.ClickException(" ".join(str(exc).split())) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception:  # a bug: it keeps its traceback, after what TensorFlow printed before it
            if hidden.text.strip():
                click.echo(hidden.text.rstrip(), err=True)
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeopt")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own log lines and the converter's output.")
def cli(verbose: bool) -> None:
    """edgeopt: train, compress, export and measure Keras models for edge devices.

    TensorFlow's own log lines (oneDNN, CUDA, converter printouts) are hidden unless
    `--verbose` comes before the command.

    \b
    Example:
        edgeopt run recipes/digits_cnn.yaml
        edgeopt export model.keras --precision float32 --precision int8 \\
            --calibration-data calib.npz --eval-data test.npz --out out/
        edgeopt inspect out/model.int8.tflite
        edgeopt sensitivity model.keras --calibration-data calib.npz --eval-data test.npz
        edgeopt bench out/model.int8.tflite --device local --device rpi4
        edgeopt --verbose export model.keras    # with TensorFlow's log
    """


def _register() -> None:
    from edgeopt.cli.bench import bench
    from edgeopt.cli.devices import devices
    from edgeopt.cli.export import export
    from edgeopt.cli.inspect import inspect
    from edgeopt.cli.run import compare, report, run
    from edgeopt.cli.search import search
    from edgeopt.cli.sensitivity import sensitivity

    for command in (run, export, inspect, bench, devices, report, compare, search, sensitivity):
        cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point (`edgeopt`)."""
    cli(prog_name="edgeopt")
