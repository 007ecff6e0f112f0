#!/usr/bin/env python3
"""edgeopt's device-side latency runner: one file, pushed to the device and run there.

It needs only the Python standard library, numpy and one LiteRT runtime
(`ai_edge_litert`, or `tflite_runtime` which needs numpy<2) — never TensorFlow or
edgeopt, so it must not import anything from edgeopt. It loads the model, fills the
inputs with random data of the right dtype and shape (or a pushed .npy), warms up,
runs until both --runs and --min-secs are met (bounded by --max-secs) and prints ONE
JSON object on stdout. Exit codes: 0 ok, 3 runtime missing, 4 model refused, 2 usage.

    python3 runner.py --model m.tflite --threads 4 --runs 50 --warmup 5 --min-secs 1
    python3 runner.py --probe          # runtime, versions and device facts only
"""

import argparse
import json
import os
import platform
import re
import sys
import time

EXIT_RUNTIME_MISSING = 3
EXIT_MODEL_REFUSED = 4
MAX_LATENCIES_KEPT = 20000  # per-run latencies in the JSON; stats always use every run


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def load_runtime(preference="auto"):
    """Returns (Interpreter class, runtime name, version) or raises ImportError."""
    errors = []
    names = ["ai_edge_litert", "tflite_runtime"] if preference == "auto" else [preference]
    for name in names:
        try:
            if name == "ai_edge_litert":
                from ai_edge_litert.interpreter import Interpreter
                import ai_edge_litert as module
            else:
                from tflite_runtime.interpreter import Interpreter
                import tflite_runtime as module
        except ImportError as exc:
            errors.append("%s: %s" % (name, exc))
            continue
        return Interpreter, name, getattr(module, "__version__", None)
    raise ImportError("; ".join(errors))


def cpu_model(cpuinfo=None):
    """'model name' on x86/ARM Linux, the board's 'Model' on a Pi, 'Hardware' on Android."""
    found = {}
    text = _read(CPUINFO_FILE) if cpuinfo is None else cpuinfo
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        if value.strip():
            found.setdefault(key.strip(), value.strip())
    parts = [found[key] for key in ("Model", "model name", "Hardware") if key in found]
    if parts:
        return " / ".join(dict.fromkeys(parts))
    if cpuinfo is not None:  # text from another machine: do not describe this one
        return None
    return platform.processor() or platform.machine() or None


# Where Linux (and Android) expose the facts a result records. `DeviceSession` reads the
# same files with `cat` on devices without Python (benchmark_model) and parses them with
# `parse_facts`, so both runners report the same facts the same way.
CPUINFO_FILE = "/proc/cpuinfo"
FACT_FILES = (
    ("governor", "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    ("cpu_freq", "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"),
    ("temperature", "/sys/class/thermal/thermal_zone0/temp"),
)
_INT = re.compile(r"[0-9]{1,12}")
_DECIMAL = re.compile(r"-?[0-9]{1,12}(?:\.[0-9]{1,6})?")


def parse_temperature(raw):
    """°C from a thermal zone's text (millidegrees, or degrees on some boards), else None."""
    raw = (raw or "").strip()
    if not _DECIMAL.fullmatch(raw):
        return None
    value = float(raw)
    return round(value / 1000.0 if abs(value) > 1000 else value, 1)


def parse_facts(cpu_model_text, machine, governor, cpu_freq, temperature):
    """The facts a result records, from the raw texts of `FACT_FILES` (None or "" when absent)."""
    cpu_freq = (cpu_freq or "").strip()
    return {
        "cpu_model": cpu_model_text[:200] if cpu_model_text else None,
        "machine": (machine or "").strip()[:40] or None,
        "governor": (governor or "").strip()[:40] or None,
        "cpu_freq_khz": int(cpu_freq) if _INT.fullmatch(cpu_freq) else None,
        "temperature_c": parse_temperature(temperature),
    }


def thermal_c():
    return parse_temperature(_read(dict(FACT_FILES)["temperature"]))


def device_facts():
    files = dict(FACT_FILES)
    facts = parse_facts(cpu_model(), platform.machine(), _read(files["governor"]), _read(files["cpu_freq"]),
                        _read(files["temperature"]))
    facts["cpu_count"] = os.cpu_count()
    return facts


def peak_rss_mb():
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024.0, 2)
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 2)
    except Exception:
        return None


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def summarize(latencies_ms):
    ordered = sorted(latencies_ms)
    n = len(ordered)
    mean = sum(ordered) / n
    std = (sum((x - mean) ** 2 for x in ordered) / n) ** 0.5
    tenth = max(1, n // 10)
    first, last = latencies_ms[:tenth], latencies_ms[-tenth:]
    drift_ratio = (sum(last) / len(last)) / (sum(first) / len(first)) if n >= 20 else None
    return {
        "min_ms": ordered[0], "mean_ms": mean, "std_ms": std, "p50_ms": percentile(ordered, 50),
        "p90_ms": percentile(ordered, 90), "p95_ms": percentile(ordered, 95), "p99_ms": percentile(ordered, 99), "max_ms": ordered[-1],
        "drift_ratio": drift_ratio,
        # the last tenth of the runs markedly slower than the first: likely thermal throttling
        "drift": bool(drift_ratio is not None and drift_ratio > 1.15),
    }


def random_input(np, rng, detail):
    shape = [max(1, int(d)) for d in detail["shape"]]
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = max(info.min, -128), min(info.max, 127)
        return rng.integers(low, high + 1, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    raise ValueError("unsupported input dtype %s" % dtype)


def emit(obj, code=0):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
    sys.exit(code)


def main(argv=None):
    parser = argparse.ArgumentParser(description="edgeopt latency runner")
    parser.add_argument("--model")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--min-secs", type=float, default=1.0)
    parser.add_argument("--max-secs", type=float, default=150.0)
    parser.add_argument("--input", help=".npy file with the input batch")
    parser.add_argument("--runtime", default="auto", choices=["auto", "ai_edge_litert", "tflite_runtime"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe", action="store_true", help="print runtime and device facts only")
    args = parser.parse_args(argv)

    base = {"python": platform.python_version()}
    try:
        Interpreter, runtime, version = load_runtime(args.runtime)
    except ImportError as exc:
        emit(dict(base, error="runtime_missing", message=str(exc), **device_facts()), EXIT_RUNTIME_MISSING)
    import numpy as np

    base.update(runtime=runtime, runtime_version=version, numpy_version=np.__version__)
    if args.probe:
        emit(dict(base, **device_facts()))
    if not args.model:
        parser.error("--model is required")

    temp_before = thermal_c()
    t0 = time.perf_counter()
    try:
        interpreter = Interpreter(model_path=args.model, num_threads=args.threads)
        interpreter.allocate_tensors()
    except Exception as exc:  # the runtime raises ValueError/RuntimeError for models it refuses
        emit(dict(base, error="model_refused", message="%s: %s" % (type(exc).__name__, exc)), EXIT_MODEL_REFUSED)
    init_ms = (time.perf_counter() - t0) * 1000.0

    rng = np.random.default_rng(args.seed)
    details = interpreter.get_input_details()
    if args.input:
        batch = np.load(args.input)
        feeds = [(details[0]["index"], batch.astype(details[0]["dtype"]))]
    else:
        feeds = [(d["index"], random_input(np, rng, d)) for d in details]

    def invoke():
        for index, value in feeds:
            interpreter.set_tensor(index, value)
        start = time.perf_counter()
        interpreter.invoke()
        return (time.perf_counter() - start) * 1000.0

    try:
        first_ms = invoke()
        for _ in range(max(0, args.warmup)):
            invoke()
        latencies = []
        started = time.perf_counter()
        while True:
            latencies.append(invoke())
            elapsed = time.perf_counter() - started
            if len(latencies) >= args.runs and elapsed >= args.min_secs:
                break
            if elapsed >= args.max_secs:
                break
    except Exception as exc:
        emit(dict(base, error="model_refused", message="%s: %s" % (type(exc).__name__, exc)), EXIT_MODEL_REFUSED)

    result = dict(base)
    result.update(device_facts())
    result.update(summarize(latencies))
    result.update(
        runner="python",
        threads=args.threads,
        delegate="XNNPACK (default CPU)" if runtime == "ai_edge_litert" else None,
        init_ms=init_ms,
        first_inference_ms=first_ms,
        warmup_runs=args.warmup,
        runs=len(latencies),
        latencies_ms=[round(x, 5) for x in latencies[:MAX_LATENCIES_KEPT]],
        latencies_truncated=len(latencies) > MAX_LATENCIES_KEPT,
        peak_rss_mb=peak_rss_mb(),
        temperature_before_c=temp_before,
        temperature_after_c=thermal_c(),
    )
    result.pop("temperature_c", None)
    emit(result)


if __name__ == "__main__":
    main()
