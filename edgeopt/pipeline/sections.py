"""The recipe sections that are a public callable's arguments: `export` sets
`export_tflite`'s, `bench` sets `bench`'s (the harness function's), `search` sets
`SearchSettings`'s (`edgeopt.search.settings`).

Their keys are the callable's parameter names, their defaults are read from its
signature with `inspect.signature`, and their values are checked by the same
function the callable calls (`validate_export_args`, `validate_bench_args`), so a
recipe, the CLI and the Python API cannot drift apart.
"""

from __future__ import annotations

import inspect
from typing import Any

from edgeopt.errors import ConfigError
from edgeopt.pipeline._checks import check_keys, mapping, where


def precisions(values, path, *keys) -> list[str]:
    """Precision names, checked by `parse_precisions` (the one `export_tflite` uses)."""
    from edgeopt.convert.precision import Precision, parse_precisions

    if not (isinstance(values, str) or (isinstance(values, (list, tuple)) and values
                                        and all(isinstance(v, str) for v in values))):
        raise ConfigError(f"{where(path, *keys)} must be a precision or a non-empty list of them. Received: "
                          f"{values!r}. Use any of: {', '.join(p.value for p in Precision)}.")
    try:
        return [str(p) for p in parse_precisions(values)]
    except ConfigError as exc:
        raise ConfigError(f"{where(path, *keys)}: {exc}") from None


def api_defaults(function, names) -> dict[str, Any]:
    """The defaults of `function`'s arguments `names`: a recipe section's defaults are the
    public callable's, read from its signature, so the two cannot drift apart."""
    parameters = inspect.signature(function).parameters
    return {name: parameters[name].default for name in names}


# The arguments of export_tflite a recipe's export section sets; run_recipe passes the rest.
EXPORT_KEYS = ("precisions", "calibration_samples", "io_dtype", "max_accuracy_drop", "select_tf_ops", "timeout_s")
# The arguments of bench (the harness function) that are not a recipe's business.
BENCH_EXCLUDED = ("models", "progress")


def bench_keys() -> tuple[str, ...]:
    """The keys of a recipe's bench section: `bench`'s parameters but `BENCH_EXCLUDED`."""
    from edgeopt.bench.harness import benchmark

    return tuple(n for n in inspect.signature(benchmark).parameters if n not in BENCH_EXCLUDED)


def parse_export(export, path) -> dict:
    """The export section with `export_tflite`'s defaults filled in, checked as it checks them."""
    from edgeopt.convert.arguments import validate_export_args
    from edgeopt.convert.exporter import export_tflite

    export = mapping(export, path, "export")
    check_keys(export, set(EXPORT_KEYS), path, "export")
    out = {**api_defaults(export_tflite, EXPORT_KEYS), **export}
    out["precisions"] = precisions(out["precisions"], path, "export", "precisions")
    try:
        checked = validate_export_args(**{k: out[k] for k in EXPORT_KEYS})
    except ConfigError as exc:
        raise ConfigError(f"{where(path, 'export')}: {exc}") from None
    out["io_dtype"] = str(checked)
    return out


def parse_bench(bench, path, check_devices) -> dict:
    """The bench section with `bench`'s defaults filled in, checked as it checks them."""
    from edgeopt.bench.arguments import validate_bench_args
    from edgeopt.bench.harness import benchmark as bench_function

    bench = mapping(bench, path, "bench")
    keys = bench_keys()
    check_keys(bench, set(keys), path, "bench")
    out = {**api_defaults(bench_function, keys), **bench}
    out["devices"] = list(out["devices"]) if isinstance(out["devices"], tuple) else out["devices"]
    devices = out["devices"]
    if not isinstance(devices, list) or not devices or not all(isinstance(d, str) for d in devices):
        raise ConfigError(f"{where(path, 'bench', 'devices')} must be a non-empty list of profile names. "
                          f"Received: {out['devices']!r}.")
    if len(set(out["devices"])) != len(out["devices"]):
        raise ConfigError(f"{where(path, 'bench', 'devices')} lists a device twice. Received: {out['devices']!r}. "
                          "List each once.")
    try:
        validate_bench_args(**{k: v for k, v in out.items() if k != "devices"})
    except ConfigError as exc:
        raise ConfigError(f"{where(path, 'bench')}: {exc}") from None
    if check_devices:
        check_device_names(out["devices"], where(path, "bench", "devices"))
    return out


def check_device_names(devices, label: str) -> None:
    """Every device profile loads; else a `ConfigError` prefixed with `label` (where they came from)."""
    from edgeopt.bench.profiles import load_profile

    for device in devices:
        try:
            load_profile(device)
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from None


def parse_search(search, path, check_devices, builder=None) -> dict:
    """The search section, checked by constructing `SearchSettings` (its keys and defaults)."""
    from edgeopt.search.settings import parse_section

    return parse_section(search, path, builder=builder, check_devices=check_devices)
