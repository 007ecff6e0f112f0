"""Small checks shared by the recipe parsers; each error names the file and the key."""

from __future__ import annotations

import inspect
from pathlib import Path

from edgeopt._callables import resolve_callable
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


def check_call(function, kwargs: dict, label: str, spec: str) -> None:
    """`function(**kwargs)` would bind: the names and count of the arguments fit its signature."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: it checks when called
        return
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{label} do not fit {spec}: {exc}. Received: {sorted(map(str, kwargs))}. "
                          "Check the argument names.") from None


def model_spec(model, path, *keys) -> dict:
    """A model section (the recipe's `model`, a distillation `student`): a builder with
    kwargs that fit it, or an existing model file."""
    model = mapping(model, path, *keys)
    check_keys(model, {"builder", "kwargs", "path"}, path, *keys)
    if ("builder" in model) == ("path" in model):
        raise ConfigError(f"{where(path, *keys)} needs exactly one of 'builder' or 'path'. Received: {model!r}.")
    kwargs = mapping(model.get("kwargs"), path, *keys, "kwargs")
    if "builder" in model:
        builder = resolve_callable(model["builder"], where(path, *keys, "builder"))
        if not callable(builder):
            raise ConfigError(f"{where(path, *keys, 'builder')} is not callable. Received: {model['builder']!r}.")
        check_call(builder, kwargs, where(path, *keys, "kwargs"), model["builder"])
    elif not Path(path_string(model["path"], path, *keys, "path")).exists():
        raise ConfigError(f"{where(path, *keys, 'path')}: no such model file. Received: {model['path']!r}.")
    elif kwargs:
        raise ConfigError(f"{where(path, *keys, 'kwargs')} are for a builder; a model file takes none. "
                          f"Received: {kwargs!r}. Drop kwargs, or use builder.")
    return {"builder": model.get("builder"), "path": model.get("path"), "kwargs": kwargs}
