"""Pruning and clustering under MirroredStrategy with two logical CPU devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_training_techniques_under_mirrored_strategy():
    proc = subprocess.run([sys.executable, "-m", "tests.distributed_main"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    for flavour in ("keras3", "tf_keras"):
        assert out[f"{flavour}_pruned_sparsity"] == pytest.approx(0.7, abs=0.01)
        assert out[f"{flavour}_logged_sparsity"] == pytest.approx(0.7, abs=0.01)
        assert out[f"{flavour}_cluster_values"] <= 9  # 8 clusters + the pinned zero
        assert out[f"{flavour}_cluster_sparsity"] >= 0.69
        first, last = out[f"{flavour}_distill_loss"]
        assert last < first
    first, last = out["keras3_qat_loss"]
    assert last < first and out["keras3_qat_range"] > 0
