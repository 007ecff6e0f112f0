"""The layout of a run directory: the entries edgeopt reserves, and which names are
safe to use as directory names in it (recipe names under `runs/`, variant names).

A name from a recipe or a manifest becomes a path, so it must be one plain path
component: ASCII letters, digits, `_` and `-` (and `.` inside a recipe name), never
`..`, a separator, or an entry that a run writes itself (a variant named `train`
would overwrite the base model).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath

MANIFEST = "manifest.json"
LOCK = ".edgeopt.lock"
TRAIN_DIR = "train"
# Everything a run writes at the top of its directory, besides the variants' directories.
RESERVED = frozenset({TRAIN_DIR, MANIFEST, LOCK, "report.md", "report.html", "report.json", "pareto.png"})

_VARIANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_RECIPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def variant_name_problem(name: object) -> str | None:
    """Why `name` cannot be a variant name, or `None` when it can."""
    if not isinstance(name, str) or not _VARIANT.fullmatch(name):
        return "must be 1-64 ASCII letters, digits, _ and -, starting with a letter or digit"
    if name.casefold() in {r.casefold() for r in RESERVED}:
        return f"is reserved: the run directory's {name!r} entry would be overwritten; rename the variant"
    return None


def recipe_name_problem(name: object) -> str | None:
    """Why `name` cannot name a run directory under `runs/`, or `None` when it can."""
    if not isinstance(name, str) or not _RECIPE.fullmatch(name) or name.strip(".") == "" or ".." in name:
        return "must be 1-100 ASCII letters, digits, '.', _ and -, starting with a letter or digit, without '..'"
    return None


def safe_recipe_name(stem: str) -> str:
    """A file stem made into a valid recipe name (unsafe characters become `_`)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", stem).replace("..", "_")[:100]
    return name if recipe_name_problem(name) is None else f"recipe_{name}"[:100].rstrip(".") or "recipe"


def is_relative_inside(rel: object) -> bool:
    """True when `rel` is a relative path that stays inside the directory it is joined to."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        return False
    for pure in (PurePosixPath(rel), PureWindowsPath(rel)):
        if pure.is_absolute() or pure.drive or pure.anchor or ".." in pure.parts:
            return False
    return True
