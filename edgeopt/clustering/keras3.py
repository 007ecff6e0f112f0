"""Weight clustering for Keras 3 models, which tfmot does not support.

Written here because tfmot's clustering needs tf_keras. Each selected kernel gets a
variable constraint that Keras 3 applies inside the optimizer step, right after every
update: the centroids become the means of their members (so each centroid moves by the
average update of the weights assigned to it — the centroids are trained through their
members) and every weight is replaced by its centroid. Assignments are fixed at
initialisation; with `preserve_sparsity`, zeros form their own cluster pinned at 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt._layers import Target
from edgeopt.clustering.init import CentroidInit, assign, init_centroids


class ClusterProjection:
    """Keras 3 variable constraint: tie a kernel to `clusters` shared values."""

    def __init__(self, indices: np.ndarray, clusters: int, pinned_zero: bool):
        import tensorflow as tf

        self.indices = tf.constant(indices.ravel(), dtype=tf.int32)
        self.segments = clusters + (1 if pinned_zero else 0)
        self.pinned_zero = pinned_zero

    def __call__(self, weight):
        import tensorflow as tf

        flat = tf.reshape(weight, [-1])
        centroids = tf.math.unsorted_segment_mean(flat, self.indices, self.segments)
        if self.pinned_zero:  # the last segment holds the pruned weights
            centroids = tf.concat([centroids[:-1], tf.zeros([1], centroids.dtype)], axis=0)
        return tf.reshape(tf.gather(centroids, self.indices), tf.shape(weight))


def cluster_targets(targets: list[Target], clusters: int, init: CentroidInit, preserve_sparsity: bool) -> None:
    """Initialises and ties the kernels of `targets` (layers of a fresh clone)."""
    for target in targets:
        values = target.read()
        flat = values.ravel()
        zero = (flat == 0) if preserve_sparsity else np.zeros(flat.shape, bool)
        centroids = init_centroids(flat[~zero] if (~zero).any() else flat, clusters, init)
        indices = assign(flat, centroids)
        indices[zero] = clusters  # the pinned-zero segment
        constraint = ClusterProjection(indices, clusters, bool(zero.any()))
        target.variable.constraint = constraint
        target.variable.assign(constraint(target.variable))


def strip(model: Any) -> Any:
    """A copy of `model` with plain layers; kernels keep their clustered values."""
    from edgeopt._keras import clone_with_weights

    return clone_with_weights(model)
