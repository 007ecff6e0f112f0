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


class _AliasedOption(click.Option):
    """An option whose older spellings (`hidden_aliases`) still work but are not shown
    in `--help`, so renaming a flag does not break the scripts that use it."""

    def __init__(self, *args, hidden_aliases: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.hidden_aliases = tuple(hidden_aliases)

    def get_help_record(self, ctx):
        shown, self.opts = self.opts, [o for o in self.opts if o not in self.hidden_aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


def out_option(dest: str, help: str, **settings):
    """`-o/--out`: where a command writes its results, a file or a directory as `help`
    says. Every command spells it so; `--output` (export's old name) still works, unshown.

    Args:
        dest: the command's parameter name (`out_path` for a file, `out_dir` for a directory).
        help: what is written there.
        **settings: more `click.option` settings (`default`, `required`, `show_default`).
    """
    return click.option("-o", "--out", "--output", dest, cls=_AliasedOption, hidden_aliases=("--output",),
                        type=click.Path(), help=help, **settings)
