"""The benchmark_model output parser on both formats and their variants."""

from __future__ import annotations

import pytest

from edgeopt.bench.benchmark_model import BenchmarkOutputError, parse_benchmark_output
from tests.bench.fixtures_harness import FIXTURES


def parse(name):
    return parse_benchmark_output((FIXTURES / name).read_text())


def test_newer_format_with_info_prefix():
    f = parse("newer_info.txt")
    assert f["init_ms"] == pytest.approx(17.187)
    assert f["first_inference_ms"] == pytest.approx(3512.391)
    assert f["warmup_avg_ms"] == pytest.approx(3512.39)
    assert f["mean_ms"] == pytest.approx(2950.34)  # 2.95034e+06 us
    assert (f["runs"], f["warmup_runs"]) == (50, 1)
    assert f["min_ms"] == pytest.approx(2727.568) and f["max_ms"] == pytest.approx(3189.954)
    assert f["std_ms"] == pytest.approx(109.798)
    assert f["memory_delta_mb"] == pytest.approx(46.0859)
    assert f["peak_rss_mb"] == pytest.approx(48.1)
    assert f["model_size_mb"] == pytest.approx(16.9008) and f["threads"] == 4
    assert "p50_ms" not in f and "p90_ms" not in f  # not printed, so not invented


def test_older_format_without_prefix():
    f = parse("older.txt")
    assert f["init_ms"] == pytest.approx(38.467) and f["warmup_avg_ms"] == pytest.approx(83.235)
    assert f["mean_ms"] == pytest.approx(79.7609)
    assert f["peak_rss_mb"] == pytest.approx(45.7656)
    assert f["runs"] == 50 and f["min_ms"] == pytest.approx(78.302)
    assert "first_inference_ms" not in f


def test_all_same_percentiles_and_partial_delegation():
    f = parse("all_same_percentiles_delegate.txt")
    assert f["runs"] == 50
    assert f["min_ms"] == f["max_ms"] == f["p50_ms"] == f["mean_ms"] == pytest.approx(12.0)
    assert f["std_ms"] == 0.0
    assert (f["delegate"], f["delegated_nodes"], f["total_nodes"]) == ("TfLiteGpuDelegateV2", 64, 66)
    assert f["init_ms"] == pytest.approx(612.5)


def test_logcat_prefix_and_percentiles():
    f = parse("logcat_percentiles.txt")
    assert f["runs"] == 1000 and f["warmup_runs"] == 9
    assert f["p50_ms"] == pytest.approx(51.891) and f["p5_ms"] == pytest.approx(49.62)
    assert f["p95_ms"] == pytest.approx(68.628) and f["mean_ms"] == pytest.approx(63.7432)


def test_no_timings_is_an_error():
    with pytest.raises(BenchmarkOutputError):
        parse_benchmark_output("ERROR: Could not open '/data/local/tmp/x.tflite'.\nAborted\n")


# --- Odd output: never another exception, never NaN/inf/negative, never a number invented. ---

import math  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgeopt.bench.result import LatencyResult  # noqa: E402


@pytest.mark.parametrize("text", [
    "INFO: count=50 first=1 curr=1 min=1 max=1 avg=nan std=0\n",
    "INFO: count=50 first=1 curr=1 min=1 max=1 avg=1e999 std=0\n",
    "INFO: Inference timings in us: Init: 1, First inference: 1, Warmup (avg): 1, Inference (avg): inf\n",
    "INFO: Inference timings in us: Init: 1, First inference: 1, Warmup (avg): 1, Inference (avg): -5\n",
    "INFO: count=50 avg=" + "9" * 5000 + "\n",
    "INFO: count=" + "9" * 5000 + "\ngarbage\n",
    "Average inference timings in us: Warmup: 1, Init: 1, Inference: 1e99999\n",
], ids=["nan", "1e999", "inf", "negative", "5000-digits", "count-5000-digits", "old-1e99999"])
def test_odd_timings_are_no_timings(text):
    with pytest.raises(BenchmarkOutputError):
        parse_benchmark_output(text)


def test_odd_side_values_are_left_out():
    text = ("INFO: count=" + "9" * 5000 + " curr=1\nINFO: Replacing " + "9" * 50 + " out of 3 node(s) with delegate "
            "(X)\nINFO: Num threads: [-1]\nPeak memory footprint (MB): init=1 overall=1e999\n"
            "INFO: count=50 first=1 curr=1 min=1 max=2 avg=1500 std=1e999\n")
    fields = parse_benchmark_output(text)
    assert fields["mean_ms"] == 1.5 and fields["runs"] == 50
    assert "std_ms" not in fields and "peak_rss_mb" not in fields and "threads" not in fields
    assert "delegated_nodes" not in fields and "warmup_runs" not in fields


_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                     st.sampled_from(["nan", "inf", "-1", "1e999", "9" * 400, "2.95034e+06", "0"]))
_line = st.one_of(
    st.text(max_size=80),
    st.builds("INFO: count={} first={} curr={} min={} max={} avg={} std={}".format, *[_numbers] * 7),
    st.builds("INFO: count={} curr={}(all same)".format, _numbers, _numbers),
    st.builds("Inference timings in us: Init: {}, First inference: {}, Warmup (avg): {}, Inference (avg): {}".format,
              *[_numbers] * 4),
    st.builds("Average inference timings in us: Warmup: {}, Init: {}, Inference: {}".format, *[_numbers] * 3),
    st.builds("Replacing {} out of {} node(s) with delegate ({}) node".format, _numbers, _numbers, st.text(max_size=9)),
    st.builds("Peak memory footprint (MB): init={} overall={}".format, _numbers, _numbers),
    st.builds("Num threads: [{}]".format, _numbers),
    st.builds("Initialized session in {}ms.".format, _numbers),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_line, max_size=12).map("\n".join))
def test_any_text_parses_to_finite_fields_or_no_timings(text):
    try:
        fields = parse_benchmark_output(text)
    except BenchmarkOutputError:
        return
    for key, value in fields.items():
        if isinstance(value, float):
            assert math.isfinite(value) and value >= 0, (key, value)
    assert LatencyResult.from_fields("d", "m", fields).ok  # the schema accepts what the parser gives


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1e12), st.floats(0, 1e12), st.integers(1, 10**6))
def test_printed_values_are_read_back(avg_us, std_us, runs):
    text = f"INFO: count={runs} first=1 curr=1 min=0 max={avg_us * 2:.6g} avg={avg_us:.6g} std={std_us:.6g}\n"
    fields = parse_benchmark_output(text)
    assert fields["runs"] == runs
    assert fields["mean_ms"] == pytest.approx(float(f"{avg_us:.6g}") / 1000)
    assert fields["std_ms"] == pytest.approx(float(f"{std_us:.6g}") / 1000)
