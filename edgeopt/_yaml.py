"""Reading YAML files (recipes, device profiles) with errors that give the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeopt.errors import ConfigError


def read_yaml(path: str | Path, what: str) -> Any:
    """Parses `path`; a syntax error becomes a `ConfigError` naming the file and line."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{what} does not parse. Received: {str(path)!r}{line} "
                          f"({getattr(exc, 'problem', exc)}). Fix the YAML syntax.") from None
