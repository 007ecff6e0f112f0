"""`edgeopt devices`: list device profiles and check that a device is ready."""

from __future__ import annotations

import click

from edgeopt.cli._options import json_option
from edgeopt.cli._output import echo_json, table


@click.group()
def devices():
    """Device profiles: list them, check one.

    \b
    Example:
        edgeopt devices list
        edgeopt devices check rpi4
    """


@devices.command("list")
@json_option("profiles")
def list_cmd(as_json):
    """List the device profiles found (./devices, $EDGEOPT_DEVICES, edgeopt's own).

    \b
    Example:
        edgeopt devices list --json
    """
    from edgeopt.bench.profiles import list_profiles

    profiles = list_profiles()
    if as_json:
        echo_json([dict(p.to_dict(), source=p.source) for p in profiles])
        return
    click.echo(table(["name", "transport", "runner", "target", "description"],
                     [[p.name, p.transport, p.runner, p.host or p.serial or "", p.description] for p in profiles]))


@devices.command("check")
@click.argument("name")
@json_option("the checks")
def check_cmd(name, as_json):
    """Check device NAME: reachable, workdir writable, runtime and version, CPU, governor, temperature.

    Exits 1 if a check failed; each failed check carries a fix hint.

    \b
    Example:
        edgeopt devices check android
    """
    from edgeopt.bench.checks import check_device

    checks = check_device(name)
    if as_json:
        echo_json([c.to_dict() for c in checks])
    else:
        for c in checks:
            mark = click.style("ok  ", fg="green") if c.ok else click.style("FAIL", fg="red")
            click.echo(f"{mark} {c.name:<17} {c.detail}")
            if c.hint and not c.ok:
                click.echo(f"     {'':<17} fix: {c.hint}")
    failed = [c for c in checks if not c.ok]
    if failed:
        raise click.ClickException(f"{name}: {len(failed)} check(s) failed: {', '.join(c.name for c in failed)}")
