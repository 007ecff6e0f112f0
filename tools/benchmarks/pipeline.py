"""Wall time of `edgeopt run recipes/digits_cnn.yaml`, by stage, and of the same run resumed.

Target: the resumed complete run does no training or conversion and takes under 10 s.
Both runs go through the real CLI in subprocesses (what a user types).

    python tools/benchmarks/pipeline.py [--recipe recipes/digits_cnn.yaml]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(Path(__file__).resolve().parents[2] / "recipes" / "digits_cnn.yaml"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cli = [sys.executable, "-m", "edgeopt.cli", "run", args.recipe, "-q"]
        start = time.perf_counter()
        first = subprocess.run([*cli, "--out", str(run_dir)], capture_output=True, text=True)
        fresh = time.perf_counter() - start
        manifest = json.loads((run_dir / "manifest.json").read_text())
        start = time.perf_counter()
        second = subprocess.run([*cli, "--resume", str(run_dir)], capture_output=True, text=True)
        resumed = time.perf_counter() - start
        after = json.loads((run_dir / "manifest.json").read_text())
        report = (run_dir / "report.md").read_text()

    by_kind = defaultdict(float)
    for key, stage in manifest["stages"].items():
        by_kind[key.split(":")[0]] += stage["seconds"]
    rerun = [k for k, v in after["stages"].items() if v["finished"] != manifest["stages"][k]["finished"]]
    print(f"edgeopt run {Path(args.recipe).name}: {fresh:.1f} s wall (exit {first.returncode}); by stage:")
    for kind, seconds in by_kind.items():
        print(f"  {kind:<8} {seconds:6.1f} s")
    print(f"  other    {fresh - sum(by_kind.values()):6.1f} s (start-up, data, report)")
    print(f"resumed: {resumed:.2f} s wall (exit {second.returncode}); stages re-run: {rerun or 'none'} "
          "(target: none, under 10 s)")
    print("\nReport table of the first run:\n")
    print(report.split("\n\n")[2])


if __name__ == "__main__":
    main()
