"""`edgeopt search` against hand-written variants, and 2 workers against 1.

1. `edgeopt run recipes/digits_cnn.yaml` (six hand-written variants × float32/int8):
   its wall time T, and its best row within 1 accuracy point of the baseline
   (smallest gzip size, then most accurate).
2. `edgeopt search recipes/digits_search.yaml` given the same wall clock × 3
   (`--timeout-s 3T`, counted from the start, base training included; the trial
   running at the deadline finishes), budget `max_accuracy_drop: 1.0` only: its best.
   Both best models are then timed again back to back (same settings, more runs),
   since sub-millisecond p50s drift with the machine's load.
   Target: the search's model dominates (no larger, no less accurate, no slower).
3. The same number of trials on 1 worker and on 2 (fresh studies, the trained model
   copied in so neither trains): the wall-time ratio.

Every run goes through the real CLI in a subprocess (what a user types).

    nice python tools/benchmarks/search.py [--factor 3] [--compare-trials 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "edgeopt.cli", *args], capture_output=True, text=True, env=env)
    return time.perf_counter() - start, done


def hand_written_best(run_dir: Path, max_drop: float) -> dict | None:
    rows = [r for r in json.loads((run_dir / "report.json").read_text())
            if r["status"] == "ok" and r["accuracy_drop_points"] is not None and r["accuracy_drop_points"] <= max_drop]
    if not rows:
        return None
    best = min(rows, key=lambda r: (r["gzip_size_bytes"], -r["accuracy"]))
    return {"name": f"{best['variant']}/{best['precision']}", "gzip_kib": best["gzip_size_bytes"] / 1024,
            "accuracy": 100 * best["accuracy"], "drop": best["accuracy_drop_points"], "p50_ms": best["p50_ms"],
            "path": str(run_dir / best["variant"] / f"model.{best['precision']}.tflite")}


def remeasure(paths: list[str]) -> list[float]:
    """p50s of `paths`, back to back, interleaved three times; the median of each."""
    import statistics

    import edgeopt

    samples: list[list[float]] = [[] for _ in paths]
    for _ in range(3):
        for i, path in enumerate(paths):
            samples[i].append(edgeopt.measure_latency(path, "local", threads=1, runs=300, warmup=20,
                                                      min_secs=1.0).p50_ms)
    return [statistics.median(s) for s in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=float, default=3.0, help="search wall clock = factor × the run's")
    parser.add_argument("--compare-trials", type=int, default=8, help="trials of the 1-vs-2 worker comparison")
    parser.add_argument("--max-drop", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_s, run = cli("run", str(ROOT / "recipes" / "digits_cnn.yaml"), "-q", "--out", str(tmp / "run"))
        hand = hand_written_best(tmp / "run", args.max_drop)
        print(f"edgeopt run digits_cnn.yaml: {run_s:.0f} s wall (exit {run.returncode})")

        recipe = yaml.safe_load((ROOT / "recipes" / "digits_search.yaml").read_text())
        recipe["search"]["budget"] = {"max_accuracy_drop": args.max_drop, "size": "gzip"}
        path = tmp / "digits_search.yaml"
        path.write_text(yaml.safe_dump(recipe))
        budget_s = args.factor * run_s
        search_s, search = cli("search", str(path), "--trials", "1000", "--timeout-s", f"{budget_s:.0f}",
                               "--out", str(tmp / "search"), "-q", "--json")
        result = json.loads(search.stdout) if search.stdout.strip() else {}
        best = result.get("best")
        print(f"edgeopt search digits_search.yaml: {search_s:.0f} s wall for a {budget_s:.0f} s budget "
              f"(exit {search.returncode}); trials: {result.get('counts')}")

        rows = []
        if hand:
            rows.append(("hand-written best (" + hand["name"] + ")", hand["gzip_kib"], hand["accuracy"], hand["drop"],
                         hand["p50_ms"], hand["path"]))
        if best:
            rows.append((f"search best (trial {best['number']})", best["gzip_size_bytes"] / 1024,
                         100 * best["accuracy"], best["accuracy_drop_points"], best["p50_ms"],
                         result["best_path"]))
        again = remeasure([r[5] for r in rows]) if rows else []
        print(f"\nBest model within {args.max_drop:g} accuracy point of the trained float32 model:\n")
        print("| model | gzip KiB | accuracy % | drop pts | p50 ms (in its run) | p50 ms (re-timed together) |")
        print("|---|---|---|---|---|---|")
        for row, p50 in zip(rows, again):
            print(f"| {row[0]} | {row[1]:.2f} | {row[2]:.2f} | {row[3]:+.2f} | {row[4]:.4f} | {p50:.4f} |")
        if best:
            print(f"\nsearch best values: {best['params']}")
        if len(rows) == 2:
            h, s = rows
            dominates = s[1] <= h[1] and s[2] >= h[2] and again[1] <= again[0]
            print(f"search dominates the hand-written best: {'yes' if dominates else 'no'} (size {s[1] / h[1]:.2f}×, "
                  f"accuracy {s[2] - h[2]:+.2f} pts, re-timed p50 {again[1] / again[0]:.2f}×)")

        walls = {}
        for workers in (1, 2):
            out = tmp / f"w{workers}"
            out.mkdir()
            for entry in ("train", "baseline", "baseline.json"):  # the trained model: reused, not retrained
                source = tmp / "search" / entry
                (shutil.copytree if source.is_dir() else shutil.copy)(source, out / entry)
            walls[workers], done = cli("search", str(path), "--trials", str(args.compare_trials), "--workers",
                                       str(workers), "--out", str(out), "-q", "--json")
            print(f"{args.compare_trials} trials on {workers} worker(s): {walls[workers]:.0f} s wall "
                  f"(exit {done.returncode})")
        print(f"2 workers vs 1: wall ratio {walls[2] / walls[1]:.2f} (on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
