"""`LatencyResult`: one model on one device, in one schema for every runner and transport."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Iterable

from edgeopt._files import atomic_write_json, atomic_write_text

# Set by the harness, never taken from what a device printed.
_HARNESS_FIELDS = frozenset({"device", "model", "status", "error", "error_type", "model_sha256", "transport",
                             "seconds"})
_SIGNED = frozenset({"temperature_before_c", "temperature_after_c"})  # may be below zero
_MAX_TEXT = 300
_MAX_LATENCIES = 1_000_000


@dataclass
class LatencyResult:
    """Latency of one model on one device. Times in milliseconds; a field the runner
    does not report (e.g. per-run latencies from `benchmark_model`) is `None`."""

    device: str
    model: str
    status: str = "ok"  # "ok" or "error"
    error: str | None = None
    error_type: str | None = None
    model_sha256: str | None = None
    transport: str | None = None
    runner: str | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    threads: int | None = None
    delegate: str | None = None
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    runs: int | None = None
    warmup_runs: int | None = None
    init_ms: float | None = None
    first_inference_ms: float | None = None
    warmup_avg_ms: float | None = None
    min_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    p5_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    latencies_ms: list[float] | None = field(default=None, repr=False)
    latencies_truncated: bool | None = None
    peak_rss_mb: float | None = None
    memory_delta_mb: float | None = None
    cpu_model: str | None = None
    cpu_count: int | None = None
    machine: str | None = None
    governor: str | None = None
    cpu_freq_khz: int | None = None
    temperature_before_c: float | None = None
    temperature_after_c: float | None = None
    drift: bool | None = None
    drift_ratio: float | None = None
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def delegation(self) -> str | None:
        """"N of M nodes delegated" when a delegate did not take the whole graph."""
        if self.delegated_nodes is None or self.total_nodes is None or self.delegated_nodes >= self.total_nodes:
            return None
        return f"{self.delegated_nodes} of {self.total_nodes} nodes delegated"

    def to_dict(self, *, with_latencies: bool = True) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["delegation"] = self.delegation
        if not with_latencies:
            data.pop("latencies_ms")
        return data

    @classmethod
    def from_fields(cls, device: str, model: str, fields: dict[str, Any], **extra: Any) -> "LatencyResult":
        """A successful result from what a device printed, checked against the schema.

        Keys outside the schema and those the harness sets (`device`, `status`...) are
        ignored; `extra` holds the harness's own values.

        Raises:
            ValueError: a field has the wrong type, is NaN/infinite or negative, or the
                output holds no latency at all; the message names the field.
        """
        values = check_fields(fields)
        values.update(extra)
        return cls(device=device, model=model, **values)


def _schema() -> dict[str, type]:
    """Field name -> its type without `None` (`float`, `int`, `str`, `bool`, `list`)."""
    hints = typing.get_type_hints(LatencyResult)
    schema = {}
    for name, hint in hints.items():
        args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        schema[name] = typing.get_origin(args[0]) or args[0]
    return schema


def _brief(value: Any) -> str:
    if isinstance(value, (str, float, bool)) or (isinstance(value, int) and abs(value) < 10**60):
        return repr(value)[:60]
    return f"a {type(value).__name__}"


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is not a number: {_brief(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name} is out of range") from None
    if not math.isfinite(number) or (number < 0 and name not in _SIGNED):
        raise ValueError(f"{name} is {number!r}, not a finite{'' if name in _SIGNED else ' non-negative'} number")
    return number


def check_fields(fields: Any) -> dict[str, Any]:
    """The schema's fields of runner/benchmark_model output, each of its declared type.

    Raises:
        ValueError: see `LatencyResult.from_fields`.
    """
    if not isinstance(fields, dict):
        raise ValueError(f"the output is a {type(fields).__name__}, not an object")
    checked: dict[str, Any] = {}
    for name, kind in _SCHEMA.items():
        value = fields.get(name)
        if value is None or name in _HARNESS_FIELDS:
            continue
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{name} is not true/false: {_brief(value)}")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
                raise ValueError(f"{name} is not a non-negative integer: {_brief(value)}")
        elif kind is float:
            value = _number(name, value)
        elif kind is str:
            if not isinstance(value, str):
                raise ValueError(f"{name} is not a string: {_brief(value)}")
            value = value[:_MAX_TEXT]
        elif kind is list:
            if not isinstance(value, list) or len(value) > _MAX_LATENCIES:
                raise ValueError(f"{name} is not a list of at most {_MAX_LATENCIES} numbers")
            value = [_number(name, x) for x in value]
        checked[name] = value
    if checked.get("mean_ms") is None and checked.get("p50_ms") is None:
        raise ValueError("it holds no latency (no mean_ms or p50_ms)")
    return checked


_SCHEMA = _schema()


CSV_FIELDS = [f.name for f in dataclasses.fields(LatencyResult) if f.name != "latencies_ms"] + ["delegation"]


def write_csv(results: Iterable[LatencyResult], path: str | os.PathLike) -> None:
    """Writes one row per result (every field but the per-run latencies) to `path`,
    atomically: a failure leaves no half-written file."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(r.to_dict(with_latencies=False) for r in results)
    atomic_write_text(path, buffer.getvalue())


def write_json(results: Iterable[LatencyResult], path: str | os.PathLike) -> None:
    """Writes the results, per-run latencies included, as a JSON list to `path`, atomically."""
    atomic_write_json(path, [r.to_dict() for r in results])
