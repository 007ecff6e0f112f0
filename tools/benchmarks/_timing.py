"""Shared by the benchmark scripts: per-epoch wall times of a `fit`."""

from __future__ import annotations

import time

from edgeopt._callback import FitCallback


class EpochTimer(FitCallback):
    """Records the wall time of every epoch in `times` (the first includes tracing)."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)
