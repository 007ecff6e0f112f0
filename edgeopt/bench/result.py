"""`LatencyResult`: one model on one device, in one schema for every runner and transport."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


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
        """Builds a result from runner output, ignoring keys outside the schema."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in fields.items() if k in known}
        values.update(extra)
        return cls(device=device, model=model, **values)


CSV_FIELDS = [f.name for f in dataclasses.fields(LatencyResult) if f.name != "latencies_ms"] + ["delegation"]
