"""A recipe data loader that waits for a file to appear: it keeps a real `edgeopt run`
busy inside its train stage for as long as a test needs (tests/pipeline/test_lock.py)."""

from __future__ import annotations

import time
from pathlib import Path


def load(release: str, timeout_s: float = 180.0):
    """The digits splits, once `release` exists (TimeoutError after `timeout_s`)."""
    from edgeopt.datasets import load_digits_splits

    deadline = time.monotonic() + timeout_s
    while not Path(release).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} did not appear within {timeout_s} s")
        time.sleep(0.05)
    return load_digits_splits()
