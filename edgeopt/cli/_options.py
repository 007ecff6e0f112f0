"""Options several commands share, declared once (as sqlite-utils does)."""

from __future__ import annotations

import click

unsafe_option = click.option(
    "--unsafe", is_flag=True,
    help="Allow models that run code: Lambda layers, SavedModel dirs (trusted files only).")

quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress lines.")


def json_option(what: str):
    """`--json` (parameter `as_json`): print `what` as JSON instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def device_option(help: str, **settings):
    """`-d/--device` (parameter `devices`, repeatable): device profile names or .yaml paths.

    Args:
        help: what the devices are for in this command.
        **settings: more `click.option` settings (`default`, `show_default`).
    """
    return click.option("-d", "--device", "devices", multiple=True, help=help, **settings)
