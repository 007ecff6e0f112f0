"""Shared output helpers: tables, JSON, progress lines."""

from __future__ import annotations

import json
from typing import Any, Sequence

import click


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def progress_printer(enabled: bool = True):
    """A `progress` callback that prints one dim line per step on stderr."""
    if not enabled:
        return None
    return lambda line: click.echo(click.style(f"  {line}", dim=True), err=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table; numbers right-aligned."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(values, raw=None):
        parts = []
        for i, value in enumerate(values):
            numeric = raw is not None and isinstance(raw[i], (int, float)) and not isinstance(raw[i], bool)
            parts.append(value.rjust(widths[i]) if numeric else value.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(c, r) for c, r in zip(cells, rows)]
    return "\n".join(out)


def fmt_bytes(n: int | None) -> str | None:
    if n is None:
        return None
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return None


def fmt_pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}%"


def shorten(text: str, width: int = 56) -> str:
    """`text` cut in the middle to `width` characters."""
    if len(text) <= width:
        return text
    keep = (width - 1) // 2
    return text[:keep] + "…" + text[-(width - 1 - keep):]


def auto_summary(settings: dict) -> str:
    """One line on an `auto` entry: how many ops got each precision, boundaries, latency vs int8."""
    counts: dict[str, int] = {}
    for choice in settings["choices"]:
        counts[choice["precision"]] = counts.get(choice["precision"], 0) + 1
    line = (f"auto: {', '.join(f'{n} op(s) {p}' for p, n in counts.items())}; {settings.get('boundaries', 0)} "
            f"precision boundaries; drop {settings.get('accuracy_drop_points', 0):+.2f} of "
            f"{settings.get('budget_points')} pts allowed; decided in {settings.get('seconds', 0):.1f} s")
    latency = settings.get("latency") or {}
    if latency.get("auto_p50_ms") is not None and latency.get("uniform_int8_p50_ms") is not None:
        line += f"; local p50 {latency['auto_p50_ms']:.4g} ms vs uniform int8 {latency['uniform_int8_p50_ms']:.4g} ms"
    return line + " (per-op choices in the report)."
