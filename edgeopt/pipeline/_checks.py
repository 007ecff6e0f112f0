"""Small checks shared by the recipe parsers; each error names the file and the key."""

from __future__ import annotations

from edgeopt.errors import ConfigError


def where(path, *keys) -> str:
    return f"{path or 'recipe'}: {'.'.join(str(k) for k in keys)}"


def mapping(value, path, *keys) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where(path, *keys)} must be a mapping. Received: {value!r}.")
    return value


def check_keys(value: dict, allowed: set[str], path, *keys) -> None:
    unknown = sorted(set(value) - allowed, key=str)  # YAML keys need not be strings
    if unknown:
        raise ConfigError(f"Unknown key{'s' if len(unknown) > 1 else ''} in {where(path, *keys)}. "
                          f"Received: {', '.join(map(_key, unknown))}. Allowed: {', '.join(sorted(allowed))}.")


def _key(key) -> str:
    """A key as typed, unless it would not show on one line as it is (then its repr)."""
    return key if isinstance(key, str) and key and key.isprintable() and key.strip() == key else repr(key)


def positive(value, kind, path, *keys):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if kind is int:
        ok = ok and isinstance(value, int)
    if not ok:
        raise ConfigError(f"{where(path, *keys)} must be a positive {'integer' if kind is int else 'number'}. "
                          f"Received: {value!r}.")
    return value


def path_string(value, path, *keys) -> str:
    """A non-empty string naming a file (YAML may give a number, a list or null)."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ConfigError(f"{where(path, *keys)} must be a file path. Received: {value!r}.")
    return value
