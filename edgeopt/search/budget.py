"""`Budget`: the accuracy, latency and size a searched model must meet.

Accuracy drops are in points below the trained model's float32 .tflite accuracy
(the same LiteRT validation `export_tflite` reports), latency is the p50 measured on
the search's device, size is the .tflite file's, gzip-compressed (what a download or
an OTA update costs, and what pruning and clustering shrink) or raw, in KiB
(1,024 bytes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping

from edgeopt._compat import StrEnum
from edgeopt.errors import ConfigError


class SizeMeasure(StrEnum):
    """Which size a budget and the size objective count."""

    GZIP = "gzip"
    RAW = "raw"


# Budget field -> (metric it bounds, unit for messages).
_LIMITS = {"max_accuracy_drop": ("accuracy_drop_points", "points"), "max_latency_ms": ("p50_ms", "ms"),
           "max_size_kb": ("size_kb", "KiB")}


@dataclass(frozen=True)
class Budget:
    """Limits a model must stay within; `None` leaves that figure free.

    Args:
        max_accuracy_drop: accuracy points below the trained model's float32 .tflite
            (1.0 = one point). Defaults to `None`.
        max_latency_ms: p50 latency on the search's device, in milliseconds.
            Defaults to `None`.
        max_size_kb: model size in KiB, as `size` counts it. Defaults to `None`.
        size: `"gzip"` (the compressed file) or `"raw"`. Defaults to `"gzip"`.

    Raises:
        ConfigError: a limit that is not a finite number >= 0 (> 0 for latency and
            size), or an unknown `size`.
    """

    max_accuracy_drop: float | None = None
    max_latency_ms: float | None = None
    max_size_kb: float | None = None
    size: str = "gzip"

    def __post_init__(self):
        for name in _LIMITS:
            value = getattr(self, name)
            if value is None:
                continue
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (value == 0 and name != "max_accuracy_drop"):
                bound = ">= 0" if name == "max_accuracy_drop" else "> 0"
                raise ConfigError(f"budget.{name} must be a number {bound} ({_LIMITS[name][1]}), or null for no "
                                  f"limit. Received: {name}={value!r}.")
            object.__setattr__(self, name, float(value))
        try:
            object.__setattr__(self, "size", SizeMeasure(self.size) if isinstance(self.size, str) else None)
        except ValueError:
            pass
        if not isinstance(self.size, SizeMeasure):
            raise ConfigError(f"budget.size must be gzip or raw. Received: size={self.size!r}.")

    @property
    def limits(self) -> dict[str, float]:
        """The limits that are set, by field name."""
        return {name: getattr(self, name) for name in _LIMITS if getattr(self, name) is not None}

    def to_dict(self) -> dict:
        data = asdict(self)
        data["size"] = str(self.size)
        return data

    def size_kb(self, size_bytes: int, gzip_size_bytes: int) -> float:
        return (gzip_size_bytes if self.size is SizeMeasure.GZIP else size_bytes) / 1024

    def excess(self, metrics: Mapping[str, float | None]) -> dict[str, float]:
        """How far over each set limit `metrics` are (> 0: missed; missing figure: inf)."""
        out = {}
        for name, limit in self.limits.items():
            value = metrics.get(_LIMITS[name][0])
            out[name] = math.inf if value is None else float(value) - limit
        return out

    def constraints(self, metrics: Mapping[str, float | None]) -> list[float]:
        """Optuna's `constraints_func` values: one per set limit, feasible when <= 0."""
        return [min(v, 1e9) for v in self.excess(metrics).values()]

    def is_met(self, metrics: Mapping[str, float | None]) -> bool:
        return all(v <= 0 for v in self.excess(metrics).values())

    def shortfall(self, metrics: Mapping[str, float | None]) -> float:
        """The sum of relative excesses: 0 when met; how the closest miss is picked."""
        total = 0.0
        for name, over in self.excess(metrics).items():
            if over > 0:
                total += over / max(self.limits[name], 1e-9) if math.isfinite(over) else 1e9
        return total

    def describe_miss(self, metrics: Mapping[str, float | None]) -> str:
        """`"accuracy drop 1.62 points > 1.0 (over by 0.62); ..."` for every missed limit."""
        parts = []
        for name, over in self.excess(metrics).items():
            if over <= 0:
                continue
            metric, unit = _LIMITS[name]
            label = {"max_accuracy_drop": "accuracy drop", "max_latency_ms": "p50 latency",
                     "max_size_kb": f"{self.size} size"}[name]
            value = metrics.get(metric)
            if value is None:
                parts.append(f"{label} not measured")
            else:
                parts.append(f"{label} {value:.3g} {unit} > {self.limits[name]:g} (over by {over:.3g})")
        return "; ".join(parts)
