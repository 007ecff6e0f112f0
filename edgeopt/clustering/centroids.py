"""Centroid initialisation and assignment for weight clustering, as tfmot does them.

tf_keras models are clustered by tfmot itself; Keras 3 models by edgeopt, which must
not import tfmot (importing it switches TensorFlow's keras attribute to tf_keras). So tfmot 0.8.1's
initialisers (`clustering_centroids.py`) are reproduced here, and the same `init`
name gives the same centroids for the same weights in both flavours:

- `"linear"`: evenly spaced between the smallest and largest weight.
- `"density"` (tfmot's `DENSITY_BASED`): the empirical CDF of the weights is taken on
  a 30-point grid over [min - gap, max + gap]; each centroid is the first grid point
  whose CDF exceeds one of `k` evenly spaced probabilities in [0.01, 1]. Centroids can
  coincide on a coarse grid, giving fewer than `k` distinct values.
- `"kmeans++"`: TensorFlow's `KmeansPlusPlusInitialization` op with tfmot's seed (9).

With `preserve_sparsity`, zero is one of the `k` centroids (so `k` clusters still fit
`log2(k)`-bit indices) and the other `k - 1` are split between the negative and the
positive weights in proportion to their counts, each side initialised on its own.
"""

from __future__ import annotations

import numpy as np

from edgeopt._checks import parse_choice
from edgeopt._compat import StrEnum

KMEANS_SEED = 9  # tfmot's
DENSITY_GRID_POINTS = 30  # tfmot's


class CentroidInit(StrEnum):
    KMEANS_PLUS_PLUS = "kmeans++"
    LINEAR = "linear"
    DENSITY = "density"


def parse_init(init: str) -> CentroidInit:
    return parse_choice(CentroidInit, init, argument="init", what="centroid init")


def init_centroids(values: np.ndarray, clusters: int, init: CentroidInit, *,
                   preserve_sparsity: bool = False) -> tuple[np.ndarray, int | None]:
    """`(centroids, zero_index)`: at most `clusters` float32 centroids, in tfmot's order.

    `zero_index` is the position of the zero centroid with `preserve_sparsity`, else None.
    """
    values = np.asarray(values, dtype=np.float32).ravel()
    if not preserve_sparsity:
        return _interval(values, clusters, init, preserve_sparsity=False), None
    negative, positive = values[values < 0], values[values > 0]
    nonzero = negative.size + positive.size
    if nonzero == 0:
        return np.zeros(1, np.float32), 0
    n_negative = int(np.round((clusters - 1) * (negative.size / nonzero)))  # half to even, like tf.math.round
    below = _interval(negative, n_negative, init, preserve_sparsity=True)
    above = _interval(positive, clusters - 1 - n_negative, init, preserve_sparsity=True)
    return np.concatenate([below, np.zeros(1, np.float32), above]), below.size


def _interval(values: np.ndarray, k: int, init: CentroidInit, *, preserve_sparsity: bool) -> np.ndarray:
    if k <= 0 or values.size == 0:
        return np.zeros(0, np.float32)
    low, high = float(values.min()), float(values.max())
    if init is CentroidInit.LINEAR:
        return np.linspace(low, high, k).astype(np.float32)
    if init is CentroidInit.DENSITY:
        gap = 0.01 if not preserve_sparsity else min(0.01, min(abs(low), abs(high)) / 2)
        grid = np.linspace(low - gap, high + gap, DENSITY_GRID_POINTS).astype(np.float32)
        cdf = (np.searchsorted(np.sort(values), grid, side="right") / values.size).astype(np.float32)  # P(w <= x)
        probabilities = np.linspace(0.01, 1.0, k).astype(np.float32)
        # tfmot interpolates the CDF between grid[i - 1] and grid[i] and solves for the
        # x at which it equals cdf[i]: that is grid[i] itself.
        return grid[np.minimum(np.searchsorted(cdf, probabilities, side="right"), grid.size - 1)]
    return _kmeans_plus_plus(values, k)


def _kmeans_plus_plus(values: np.ndarray, k: int) -> np.ndarray:
    import tensorflow as tf

    if values.size < k:  # the op needs at least as many points than centroids; tfmot would fail here
        return np.unique(values)
    centroids = tf.raw_ops.KmeansPlusPlusInitialization(
        points=tf.constant(values.reshape(-1, 1)), num_to_sample=tf.constant(k, tf.int64),
        seed=tf.constant(KMEANS_SEED, tf.int64), num_retries_per_sample=tf.constant(-1, tf.int64))
    return centroids.numpy().reshape(k).astype(np.float32)


def assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for every value (flattened; the first on ties, as tf.argmin)."""
    values = np.asarray(values, dtype=np.float32).reshape(-1, 1)
    centroids = np.asarray(centroids, np.float32).reshape(1, -1)
    out = np.empty(values.shape[0], np.int32)
    for start in range(0, values.shape[0], 1 << 16):  # bounded memory for large kernels
        out[start : start + (1 << 16)] = np.abs(values[start : start + (1 << 16)] - centroids).argmin(axis=1)
    return out
