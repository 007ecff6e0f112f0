"""Options several commands share, declared once."""

from __future__ import annotations

import click

unsafe_option = click.option(
    "--unsafe", is_flag=True,
    help="Allow models that run code: Lambda layers, SavedModel dirs (trusted files only).")
