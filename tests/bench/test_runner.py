"""The standalone device runner script, run as a real subprocess on real models."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

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
    assert data["runs"] >= 30 and len(data["latencies_ms"]) == min(data["runs"], runner.MAX_LATENCIES_KEPT)
    assert sum(data["latencies_ms"]) / 1000 >= 0.0  # every run timed
    assert data["min_ms"] <= data["p50_ms"] <= data["p90_ms"] <= data["p99_ms"] <= data["max_ms"]
    assert data["init_ms"] > 0 and data["first_inference_ms"] > 0 and data["peak_rss_mb"] > 10
    assert isinstance(data["drift"], bool) and data["cpu_model"]


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
