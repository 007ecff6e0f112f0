"""Does `edgeopt bench` report the latency a user's own loop would see?

MobileNetV2 (alpha 1.0, 224x224x3, random weights), float32 and int8, same threads:
p50 from `edgeopt bench --device local` (the runner script in a subprocess), from a
raw in-process `Interpreter.invoke()` loop, and from `litert-benchmark` (ships with
ai-edge-litert), measured side by side and interleaved in one run.
Target: edgeopt's p50 within ±3 % of the raw loop.

Also: the fixed overhead of one ssh bench over a loopback sshd (tools/loopback_sshd.py)
vs local, on a tiny model with one run (session, push, runner start, cleanup).

    python tools/benchmarks/harness_fidelity.py [--threads 2] [--runs 50] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tools.loopback_sshd


def raw_loop_p50(path: str, threads: int, runs: int, warmup: int) -> float:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    if np.dtype(detail["dtype"]).kind == "f":
        x = rng.standard_normal(detail["shape"]).astype(detail["dtype"])
    else:
        x = rng.integers(-128, 128, size=detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], x)
    for _ in range(warmup + 1):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        interpreter.set_tensor(detail["index"], x)
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def litert_benchmark_p50(path: str, threads: int, runs: int, warmup: int) -> float | None:
    exe = shutil.which("litert-benchmark")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run([exe, "--model", path, "--num_threads", str(threads), "--num_runs", str(runs),
                        "--warmup_runs", str(warmup), "--result_json", str(out)], check=True, capture_output=True)
        return json.loads(out.read_text())["latency"]["median_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import keras
    import numpy as np

    import edgeopt

    work = Path(tempfile.mkdtemp(prefix="edgeopt-fidelity-"))
    keras.utils.set_random_seed(0)
    print("exporting MobileNetV2-1.0-224 (random weights) to float32 and int8 ...", flush=True)
    model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, weights=None)
    calib = np.random.default_rng(0).random((16, 224, 224, 3), dtype=np.float32) * 2 - 1
    report = edgeopt.export_tflite(model, ["float32", "int8"], output_dir=work, calibration_data=calib, name="mnv2")
    paths = {e.precision: e.path for e in report.entries}

    rows = []
    for precision, path in paths.items():
        samples = {"edgeopt": [], "raw": [], "litert": []}
        for round_ in range(args.rounds):
            result = edgeopt.measure_latency(path, "local", threads=args.threads, runs=args.runs, warmup=args.warmup,
                                             min_secs=0)
            samples["edgeopt"].append(result.p50_ms)
            samples["raw"].append(raw_loop_p50(path, args.threads, args.runs, args.warmup))
            lb = litert_benchmark_p50(path, args.threads, args.runs, args.warmup)
            if lb is not None:
                samples["litert"].append(lb)
            print(f"  {precision} round {round_ + 1}: edgeopt {samples['edgeopt'][-1]:.2f} ms, raw "
                  f"{samples['raw'][-1]:.2f} ms, litert-benchmark {lb if lb is None else f'{lb:.2f} ms'}", flush=True)
        med = {k: statistics.median(v) if v else None for k, v in samples.items()}
        rows.append((precision, med["edgeopt"], med["raw"], med["litert"], 100 * (med["edgeopt"] / med["raw"] - 1)))

    print(f"\nMobileNetV2-1.0-224, {args.threads} threads, {args.runs} runs, median over {args.rounds} rounds")
    print(f"{'precision':<10} {'edgeopt p50':>12} {'raw loop p50':>13} {'litert-bench p50':>17} {'edgeopt vs raw':>15}")
    for precision, ours, raw, lb, diff in rows:
        print(f"{precision:<10} {ours:>9.2f} ms {raw:>10.2f} ms {('n/a' if lb is None else f'{lb:.2f} ms'):>17} "
              f"{diff:>+14.1f}%")
    print("target: |edgeopt vs raw| <= 3 %")

    from edgeopt.bench.profiles import profile_from_dict
    from tools.loopback_sshd import LoopbackSshd, find_sshd

    tiny = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    tiny_path = edgeopt.export_tflite(tiny, ["float32"], output_dir=work, name="tiny")["float32"].path
    if find_sshd() is None:
        print("\nssh overhead: skipped (no sshd; apt-get install openssh-server)")
        return
    with LoopbackSshd(work / "sshd") as server:
        ssh = profile_from_dict(server.profile_fields(python=sys.executable), name="loopback")
        walls = {"local": [], "ssh": []}
        for _ in range(5):
            for name, device in (("local", "local"), ("ssh", ssh)):
                start = time.perf_counter()
                edgeopt.measure_latency(tiny_path, device, runs=1, warmup=0, min_secs=0)
                walls[name].append(time.perf_counter() - start)
    local_s, ssh_s = statistics.median(walls["local"]), statistics.median(walls["ssh"])
    print(f"\nfixed overhead of one bench (tiny model, 1 run, median of 5): local {local_s * 1000:.0f} ms, "
          f"ssh over loopback {ssh_s * 1000:.0f} ms (+{(ssh_s - local_s) * 1000:.0f} ms)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
