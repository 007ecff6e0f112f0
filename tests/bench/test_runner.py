"""The standalone device runner script, run as a real subprocess on real models."""

from __future__ import annotations

import ast
import json
import statistics
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeopt.bench import runner
from edgeopt.bench.session import RUNNER_PATH


def run_runner(*args, python=sys.executable):
    proc = subprocess.run([python, str(RUNNER_PATH), *map(str, args)], capture_output=True, text=True, timeout=120)
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def test_runner_imports_only_stdlib_numpy_and_runtimes():
    tree = ast.parse(RUNNER_PATH.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    third_party = imported - set(sys.stdlib_module_names)
    assert third_party == {"numpy", "ai_edge_litert", "tflite_runtime"}


def test_measures_until_runs_and_min_secs(tflite_models):
    code, data = run_runner("--model", tflite_models["int8"], "--runs", 30, "--warmup", 2, "--min-secs", 0.2,
                            "--threads", 1)
    assert code == 0 and data["runtime"] == "ai_edge_litert" and data["threads"] == 1
    latencies = data["latencies_ms"]
    assert data["runs"] >= 30 and len(latencies) == min(data["runs"], runner.MAX_LATENCIES_KEPT)
    assert data["latencies_truncated"] is (data["runs"] > runner.MAX_LATENCIES_KEPT)
    assert all(x > 0 for x in latencies)  # every run timed
    # a tiny model does 30 runs in far less than --min-secs 0.2, so more runs were made, and
    # the loop stopped soon after 0.2 s (the timed invoke() calls are part of that time)
    assert data["runs"] > 30 and sum(latencies) / 1000 < 0.2 + 0.5
    # statistics over every run bound the kept ones
    assert data["min_ms"] <= min(latencies) + 1e-5 and data["max_ms"] >= max(latencies) - 1e-5
    assert data["min_ms"] <= data["p50_ms"] <= data["p90_ms"] <= data["p99_ms"] <= data["max_ms"]
    assert data["init_ms"] > 0 and data["first_inference_ms"] > 0 and data["peak_rss_mb"] > 10
    assert isinstance(data["drift"], bool) and data["cpu_model"]


def test_exactly_runs_when_min_secs_is_zero(tflite_models):
    code, data = run_runner("--model", tflite_models["int8"], "--runs", 30, "--warmup", 0, "--min-secs", 0)
    latencies = data["latencies_ms"]
    assert code == 0 and data["runs"] == 30 and len(latencies) == 30 and data["warmup_runs"] == 0
    # the statistics are those of the reported runs (rounded to 5 decimals in the JSON)
    assert data["min_ms"] == pytest.approx(min(latencies), abs=1e-5)
    assert data["max_ms"] == pytest.approx(max(latencies), abs=1e-5)
    assert data["mean_ms"] == pytest.approx(statistics.fmean(latencies), abs=1e-5)
    assert data["p50_ms"] == pytest.approx(statistics.median(latencies), abs=1e-5)


def test_runs_bound_by_max_secs(tflite_models):
    code, data = run_runner("--model", tflite_models["float32"], "--runs", 10**9, "--min-secs", 0, "--max-secs", 0.3)
    assert code == 0 and 0 < data["runs"] < 10**9


def test_runtime_missing_and_refused_model(tflite_models):
    code, data = run_runner("--probe", "--runtime", "tflite_runtime")
    assert code == runner.EXIT_RUNTIME_MISSING and data["error"] == "runtime_missing"
    code, data = run_runner("--model", tflite_models["refused"])
    assert code == runner.EXIT_MODEL_REFUSED and data["error"] == "model_refused"
    assert "EdgeoptNoSuchOp" in data["message"] or "custom" in data["message"].lower()


def test_summary_statistics_and_drift_flag():
    steady = runner.summarize([1.0] * 100)
    assert steady["p50_ms"] == 1.0 and steady["std_ms"] == 0.0 and steady["drift"] is False
    throttled = runner.summarize([1.0] * 90 + [2.0] * 10)
    assert throttled["drift"] is True and throttled["drift_ratio"] == 2.0
    assert runner.summarize([1.0, 2.0, 3.0, 4.0])["p50_ms"] == 2.5


def test_cpu_model_from_pi_and_android_cpuinfo():
    pi = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
    assert runner.cpu_model(pi) == "Raspberry Pi 4 Model B Rev 1.4 / ARMv7 Processor rev 3 (v7l) / BCM2835"
    assert runner.cpu_model("Hardware\t: Qualcomm Technologies, Inc SM8250\n") == "Qualcomm Technologies, Inc SM8250"
    assert runner.cpu_model("processor : 0\n") is None


def test_session_reads_the_same_facts_as_the_runner():
    # One parser for both runners: the Python runner reads the files itself, a
    # benchmark_model device has them read with `cat` and parsed by the same function.
    from edgeopt.bench.profiles import load_profile
    from edgeopt.bench.session import DeviceSession

    with DeviceSession(load_profile("local")) as session:
        remote = session.device_facts()
    local = runner.device_facts()
    assert remote.pop("temperature_after_c") == local.pop("temperature_c") or remote == {}  # a live sensor
    local.pop("cpu_count")
    assert remote == local and remote["machine"]


def test_parse_facts_of_typical_and_odd_values():
    facts = runner.parse_facts("Raspberry Pi 5", "aarch64\n", "performance\n", "2400000\n", "51234\n")
    assert facts == {"cpu_model": "Raspberry Pi 5", "machine": "aarch64", "governor": "performance",
                     "cpu_freq_khz": 2400000, "temperature_c": 51.2}
    assert runner.parse_temperature("-5000") == -5.0 and runner.parse_temperature("45") == 45.0
    for bad in ("", None, "nan", "1e309", "4.5e4", "--1", "²", "1" * 13):
        assert runner.parse_temperature(bad) is None
        assert runner.parse_facts(None, None, None, bad, None)["cpu_freq_khz"] is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=60)), min_size=5, max_size=5))
def test_parse_facts_never_fails_on_device_output(texts):
    facts = runner.parse_facts(*texts)
    assert set(facts) == {"cpu_model", "machine", "governor", "cpu_freq_khz", "temperature_c"}
    assert facts["cpu_freq_khz"] is None or 0 <= facts["cpu_freq_khz"] < 10**12
    assert facts["temperature_c"] is None or abs(facts["temperature_c"]) < 10**12
    assert all(v is None or len(v) <= 200 for k, v in facts.items() if k in ("cpu_model", "machine", "governor"))
