"""`package.module:attribute` specs (recipe builders and loaders, calibration callables)
resolved to the object, with errors that name the part that failed."""

from __future__ import annotations

import importlib
from typing import Any

from edgeopt.errors import ConfigError


def resolve_callable(spec: str, where: str) -> Any:
    """`package.module:attribute` -> the object, with errors that name the part that failed.

    Args:
        spec: the `package.module:attribute` text.
        where: what the spec is for, as the errors name it (`"model.builder"`).

    Raises:
        ConfigError: `spec` is not of that form, its module does not import, or the
            module lacks the attribute.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"{where} must be 'package.module:function'. Received: {spec!r}.")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, ValueError, TypeError) as exc:  # "" and ".x" are ValueError/TypeError
        raise ConfigError(f"{where}: module {module_name!r} does not import. Received: {spec!r} ({exc}). "
                          f"Cannot import module {module_name!r} as spelled: check the spelling and that it is "
                          "on PYTHONPATH.") from None
    if not hasattr(module, attr):
        raise ConfigError(f"{where}: module {module_name!r} has no attribute {attr!r}. Received: {spec!r}.")
    return getattr(module, attr)
