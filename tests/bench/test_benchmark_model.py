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
