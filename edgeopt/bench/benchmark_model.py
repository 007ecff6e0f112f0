"""Parsing TFLite `benchmark_model` output, older and newer formats, into result fields.

Accepted: lines with or without the `INFO: ` prefix (or a logcat `I tflite  : `
prefix), averages in scientific notation, `count=N curr=X(all same)`, optional
`p5= median= p95=` percentiles, delegate lines (`Replacing 64 out of 66 node(s) with
delegate (TfLiteXNNPackDelegate) node, yielding 3 partitions`), older
`Average inference timings in us: Warmup: …, Init: …, Inference: …` and
`Peak memory footprint (MB): init=… overall=…`. Fields the output does not give
are left out (None in the result), never invented; a value that is not a finite,
non-negative number of sane size (`nan`, `1e999`, 5,000 digits) is left out too, so a
run whose every timing is odd raises `BenchmarkOutputError` instead of reporting NaN.
"""

from __future__ import annotations

import math
import re

MAX_TEXT_CHARS = 16 << 20  # the transport caps output; a direct caller gets the same bound
# Bounded, and never a prefix of a longer number: "1" of "1e99999" or of 40 digits.
_NUM = r"([-+]?\d{1,30}(?:\.\d{1,30})?(?:[eE][-+]?\d{1,4})?)(?![\d.eE])"
# "INFO: ", logcat brief "I tflite  : ", logcat threadtime "11-20 10:02:11.410  4242  4242 I tflite  : "
_PREFIX = re.compile(r"^(?:INFO:\s*|(?:\S+\s+\S+\s+\d+\s+\d+\s+)?[VDIWEF]\s+tflite\s*:\s*)")
_NEW_TIMINGS = re.compile(
    rf"Inference timings in us: Init: {_NUM}, First inference: {_NUM}, Warmup \(avg\): {_NUM}, Inference \(avg\): {_NUM}"
)
_OLD_TIMINGS = re.compile(rf"Average inference timings in us: Warmup: {_NUM}, Init: {_NUM}, Inference: {_NUM}")
_COUNT = re.compile(rf"^count={_NUM}\s+(.*)$")
_KEY_VALUE = re.compile(rf"\b(\w{{1,20}})={_NUM}")
_DELEGATE = re.compile(r"Replacing (\d{1,9}) out of (\d{1,9}) node\(s\) with delegate \(([^)]{1,200})\)")
_PEAK_OLD = re.compile(rf"^Peak memory footprint \(MB\): init={_NUM} overall={_NUM}")
_PEAK_NEW = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {_NUM}")
_DELTA = re.compile(rf"Memory footprint delta from the start of the tool \(MB\): init={_NUM} overall={_NUM}")
_SIZE = re.compile(rf"The input model file size \(MB\): {_NUM}")
_THREADS = re.compile(r"(?:Num threads|#threads used for CPU inference): \[?(\d{1,6})\]?")
_SESSION = re.compile(rf"Initialized session in {_NUM}\s*ms")


class BenchmarkOutputError(ValueError):
    """The text holds no benchmark_model timings."""


def _value(text: str | float) -> float | None:
    """A finite, non-negative float, else None (the field is then left out)."""
    value = float(text)
    return value if math.isfinite(value) and value >= 0 else None


def _ms(us: str | float) -> float | None:
    value = _value(us)
    return None if value is None else value / 1000.0


def _put(fields: dict, **values: float | None) -> None:
    fields.update((k, v) for k, v in values.items() if v is not None)


def parse_benchmark_output(text: str) -> dict:
    """Result fields (latencies in ms) from benchmark_model's stdout+stderr text.

    Raises:
        BenchmarkOutputError: no timing line was found.
    """
    fields: dict = {}
    counts: list[tuple[int, str]] = []
    for raw in text[:MAX_TEXT_CHARS].splitlines():
        line = _PREFIX.sub("", raw.strip())
        if match := _NEW_TIMINGS.search(line):
            init, first, warmup, inference = match.groups()
            _put(fields, init_ms=_ms(init), first_inference_ms=_ms(first), warmup_avg_ms=_ms(warmup),
                 mean_ms=_ms(inference))
        elif match := _OLD_TIMINGS.search(line):
            warmup, init, inference = match.groups()
            _put(fields, warmup_avg_ms=_ms(warmup), init_ms=_ms(init), mean_ms=_ms(inference))
        elif match := _COUNT.match(line):
            runs = _value(match.group(1))
            if runs is not None and runs.is_integer() and runs < 2**53:
                counts.append((int(runs), match.group(2)))
        elif match := _DELEGATE.search(line):
            done, total, name = match.groups()
            fields.update(delegate=name, delegated_nodes=int(done), total_nodes=int(total))
        elif match := _PEAK_OLD.match(line):
            _put(fields, peak_rss_mb=_value(match.group(2)))
        elif match := _PEAK_NEW.search(line):
            _put(fields, peak_rss_mb=_value(match.group(1)))
        elif match := _DELTA.search(line):
            _put(fields, memory_delta_mb=_value(match.group(2)))
        elif match := _SIZE.search(line):
            _put(fields, model_size_mb=_value(match.group(1)))
        elif match := _THREADS.search(line):
            if int(match.group(1)) > 0:  # -1 or 0: the runtime's default, not a count
                fields["threads"] = int(match.group(1))
        elif match := _SESSION.search(line):
            if "init_ms" not in fields:
                _put(fields, init_ms=_value(match.group(1)))
    if counts:
        # The last count= line is the measured run; an earlier one is the warm-up.
        runs, rest = counts[-1]
        values = {k: v for k, v in ((k, _ms(v)) for k, v in _KEY_VALUE.findall(rest)) if v is not None}
        fields["runs"] = runs
        if "(all same)" in rest and "curr" in values:
            same = values["curr"]
            fields.update(min_ms=same, max_ms=same, p50_ms=same, std_ms=0.0)
            fields.setdefault("mean_ms", same)
        names = {"min": "min_ms", "max": "max_ms", "std": "std_ms", "median": "p50_ms", "p5": "p5_ms",
                 "p95": "p95_ms", "avg": "mean_ms"}
        for key, name in names.items():
            if key in values:
                fields[name] = values[key]
        if len(counts) > 1:
            fields["warmup_runs"] = counts[0][0]
    if "mean_ms" not in fields:
        raise BenchmarkOutputError("no 'Inference timings' or 'count=' line in benchmark_model output")
    return fields
