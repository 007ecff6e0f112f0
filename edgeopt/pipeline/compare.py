"""`edgeopt compare`: what changed between two runs, row by row."""

from __future__ import annotations

from pathlib import Path

from edgeopt.pipeline.readers import load_manifest
from edgeopt.pipeline.report import Row, collect_rows


def checked_run_dir(run_dir: str | Path) -> Path:
    """`run_dir`, once its manifest reads back as one `edgeopt run` writes (else `ConfigError`)."""
    load_manifest(run_dir)
    return Path(run_dir)


def compare_runs(a: str | Path, b: str | Path) -> list[dict]:
    """One entry per (variant, precision, device) in either run, with both values and deltas."""
    rows_a = {(r.variant, r.precision, r.device): r for r in collect_rows(checked_run_dir(a))}
    rows_b = {(r.variant, r.precision, r.device): r for r in collect_rows(checked_run_dir(b))}
    out = []
    for key in sorted(set(rows_a) | set(rows_b), key=lambda k: tuple(str(x) for x in k)):
        ra, rb = rows_a.get(key), rows_b.get(key)
        entry = {"variant": key[0], "precision": key[1], "device": key[2], "only_in": None}
        if ra is None or rb is None:
            entry["only_in"] = "b" if ra is None else "a"
        for field in ("accuracy", "size_bytes", "gzip_size_bytes", "p50_ms"):
            va, vb = _get(ra, field), _get(rb, field)
            entry[field] = {"a": va, "b": vb, "delta": (vb - va) if va is not None and vb is not None else None}
        out.append(entry)
    return out


def _get(row: Row | None, field: str):
    return None if row is None else getattr(row, field)
