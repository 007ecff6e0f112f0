"""Reading a run directory's JSON files back: `manifest.json`, `export_report.json`
and `bench.json`.

`run --resume`, `report` and `compare` read files that may be truncated (a disk
that filled up, a copy that stopped), edited by hand or written by someone else, so
each is checked for the shape edgeopt relies on; anything else is one `ConfigError`
naming the file and the first problem, never a `KeyError` traceback. Names and paths
in them are checked too: they are joined to the run directory, so a variant named
`../x` or an output at `/etc/passwd` is refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from edgeopt.errors import ConfigError
from edgeopt.pipeline.layout import MANIFEST, is_relative_inside, variant_name_problem

_FIX = "Rerun `edgeopt run` with a fresh --out, or restore the file from the run that wrote it."


class _Bad(Exception):
    """A problem found in a file; becomes a `ConfigError` naming the file."""


def read_json(path: Path, what: str) -> Any:
    """Parses a JSON file; unreadable, non-UTF-8, truncated or too deep is a `ConfigError`."""
    try:
        text = path.read_bytes().decode("utf-8")
        return json.loads(text)
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read. Received: {str(path)!r} ({exc.strerror or exc}). {_FIX}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} is not UTF-8 text. Received: {str(path)!r}. {_FIX}") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; so are 5,000-digit numbers
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ConfigError(f"{what} is not valid JSON (truncated?). Received: {str(path)!r} ({detail}). "
                          f"{_FIX}") from None


def load_manifest(run_dir: str | Path) -> dict:
    """The checked contents of `<run_dir>/manifest.json`.

    Raises:
        ConfigError: no manifest (not a run directory), or one that is not what
            `edgeopt run` writes.
    """
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise ConfigError(f"Not an edgeopt run directory (no {MANIFEST}). Received: {str(run_dir)!r}. "
                          "Pass a directory written by `edgeopt run`.")
    data = read_json(path, MANIFEST)
    _checked(path, MANIFEST, _check_manifest, data)
    return data


def load_export_report(path: Path) -> dict:
    """The checked contents of a variant's `export_report.json`."""
    data = read_json(path, "export_report.json")
    _checked(path, "export_report.json", _check_export_report, data)
    return data


def load_bench_results(path: Path) -> list[dict]:
    """The checked contents of a variant's `bench.json`."""
    data = read_json(path, "bench.json")
    _checked(path, "bench.json", _check_bench, data)
    return data


def _checked(path: Path, what: str, check, data) -> None:
    try:
        check(data)
    except _Bad as exc:
        raise ConfigError(f"{what} is not one edgeopt writes: {exc}. Received: {str(path)!r}. {_FIX}") from None


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _get(obj: dict, key: str, kinds: tuple, where: str, *, required: bool = True):
    if key not in obj:
        if required:
            raise _Bad(f"{where} has no {key!r}")
        return None
    value = obj[key]
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if ok and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if ok and isinstance(value, int) and abs(value) > 2**63:  # would overflow float arithmetic in the report
        ok = False
    if not ok:
        raise _Bad(f"{where}.{key} is {_type_name(value)}")
    return value


def _object(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise _Bad(f"{where} is {_type_name(value)}, not an object")
    return value


NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))
OPTIONAL_STR = (str, type(None))


def _check_manifest(data) -> None:
    data = _object(data, "the top level")
    _get(data, "status", (str,), "the manifest")
    _get(data, "updated", (str,), "the manifest", required=False)
    recipe = _get(data, "recipe", (dict,), "the manifest")
    _get(recipe, "name", (str,), "recipe")
    variants = _get(recipe, "variants", (list,), "recipe")
    for i, variant in enumerate(variants):
        name = _get(_object(variant, f"recipe.variants[{i}]"), "name", (str,), f"recipe.variants[{i}]")
        problem = variant_name_problem(name)
        if problem:
            raise _Bad(f"variant name {name[:80]!r} {problem}")
    stages = _get(data, "stages", (dict,), "the manifest")
    for key, stage in stages.items():
        where = f"stages[{key[:80]!r}]"
        stage = _object(stage, where)
        _get(stage, "status", (str,), where)
        _get(stage, "input_hash", (str,), where, required=False)
        _get(stage, "seconds", NUMBER, where, required=False)
        _get(stage, "error", OPTIONAL_STR, where, required=False)
        _get(stage, "info", (dict, type(None)), where, required=False)
        outputs = _get(stage, "outputs", (dict,), where, required=False) or {}
        for rel, digest in outputs.items():
            if not is_relative_inside(rel):
                raise _Bad(f"{where}.outputs names a path outside the run directory: {rel[:80]!r}")
            if not isinstance(digest, str):
                raise _Bad(f"{where}.outputs[{rel[:80]!r}] is {_type_name(digest)}, not a sha256")


def _check_export_report(data) -> None:
    data = _object(data, "the top level")
    entries = _get(data, "entries", (list,), "the report")
    for i, entry in enumerate(entries):
        where = f"entries[{i}]"
        entry = _object(entry, where)
        _get(entry, "precision", (str,), where)
        _get(entry, "status", (str,), where)
        path = _get(entry, "path", OPTIONAL_STR, where, required=False)
        for key in ("size_bytes", "gzip_size_bytes"):
            size = _get(entry, key, (int, type(None)), where, required=False)
            if size is not None and size < 0:
                raise _Bad(f"{where}.{key} is negative")
        if entry.get("size_bytes") and not isinstance(path, str):
            raise _Bad(f"{where} has a size but no path")
        if entry.get("size_bytes") and not isinstance(entry.get("gzip_size_bytes"), int):
            raise _Bad(f"{where} has a size but no gzip_size_bytes")
        validation = _get(entry, "validation", (dict, type(None)), where, required=False) or {}
        accuracy = _get(validation, "accuracy", OPTIONAL_NUMBER, f"{where}.validation", required=False)
        if accuracy is not None and not 0 <= accuracy <= 1:
            raise _Bad(f"{where}.validation.accuracy is {accuracy!r}, not a fraction in [0, 1]")


def _check_bench(data) -> None:
    if not isinstance(data, list):
        raise _Bad(f"the top level is {_type_name(data)}, not a list")
    for i, result in enumerate(data):
        where = f"[{i}]"
        result = _object(result, where)
        _get(result, "model", (str,), where)
        _get(result, "status", (str,), where)
        _get(result, "device", (str,), where)
        for key in ("p50_ms", "p90_ms"):
            latency = _get(result, key, OPTIONAL_NUMBER, where, required=False)
            if latency is not None and latency < 0:
                raise _Bad(f"{where}.{key} is negative")
