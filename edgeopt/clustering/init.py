"""Centroid initialisation and assignment for weight clustering (numpy)."""

from __future__ import annotations

import numpy as np

from edgeopt._compat import StrEnum
from edgeopt.errors import ConfigError


class CentroidInit(StrEnum):
    KMEANS_PLUS_PLUS = "kmeans++"
    LINEAR = "linear"  # evenly spaced between the smallest and largest weight
    DENSITY = "density"  # evenly spaced in the weights' cumulative distribution


def parse_init(init: str) -> CentroidInit:
    try:
        return CentroidInit(init)
    except ValueError:
        raise ConfigError(f"Unknown centroid init. Received: init={init!r}. "
                          f"Use one of: {', '.join(i.value for i in CentroidInit)}.") from None


def init_centroids(values: np.ndarray, clusters: int, init: CentroidInit, *, seed: int = 0) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    if init is CentroidInit.LINEAR:
        return np.linspace(values.min(), values.max(), clusters)
    if init is CentroidInit.DENSITY:
        return np.quantile(values, (np.arange(clusters) + 0.5) / clusters)
    rng = np.random.default_rng(seed)
    sample = values if values.size <= 20000 else rng.choice(values, 20000, replace=False)
    centroids = [sample[rng.integers(sample.size)]]
    distance = (sample - centroids[0]) ** 2
    for _ in range(1, clusters):
        total = distance.sum()
        pick = rng.choice(sample.size, p=distance / total) if total > 0 else rng.integers(sample.size)
        centroids.append(sample[pick])
        distance = np.minimum(distance, (sample - sample[pick]) ** 2)
    return np.sort(np.asarray(centroids))


def assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for every value (same shape, flattened order)."""
    return np.abs(np.asarray(values).reshape(-1, 1) - centroids.reshape(1, -1)).argmin(axis=1).astype(np.int32)
