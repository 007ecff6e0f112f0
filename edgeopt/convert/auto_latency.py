"""The local latency of an `auto` model next to uniform int8, for its report entry.

A mixed model is smaller but can be slower: every precision boundary adds quantize
and dequantize ops, and int4 weight-only regions compute in float. So the exporter
measures both with the local bench (`edgeopt.bench`, a short run) and records them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edgeopt.errors import EdgeoptError

RUNS, MIN_SECS, MAX_SECS = 30, 0.3, 20.0


def auto_latency(auto_path: str | Path, int8_path: str | Path, stem: str) -> dict:
    """`{"device", "auto_p50_ms", "uniform_int8_p50_ms", "baseline"}`, or `{"error": ...}`; never raises
    for a bench problem (the export itself succeeded)."""
    from edgeopt.bench.harness import benchmark

    int8_path = Path(int8_path)
    if not int8_path.is_file():
        return {"error": "no uniform int8 model to compare with (ai-edge-quantizer could not make one)"}
    with tempfile.TemporaryDirectory(prefix="edgeopt-auto-bench-") as tmp:
        baseline = Path(tmp) / f"{stem}.uniform-int8.tflite"
        shutil.copyfile(int8_path, baseline)
        try:
            results = benchmark([str(auto_path), str(baseline)], ["local"], runs=RUNS, warmup=3, min_secs=MIN_SECS,
                                max_secs=MAX_SECS)
        except EdgeoptError as exc:
            return {"error": " ".join(str(exc).split())[:300]}
    auto, int8 = results

    def p50(result):
        return None if result.status != "ok" else result.p50_ms if result.p50_ms is not None else result.mean_ms

    out = {"device": "local", "auto_p50_ms": p50(auto), "uniform_int8_p50_ms": p50(int8),
           "baseline": "uniform int8 by ai-edge-quantizer (same calibration)", "runs": RUNS}
    errors = [r.error for r in (auto, int8) if r.status != "ok"]
    if errors:
        out["error"] = errors[0]
    return out
