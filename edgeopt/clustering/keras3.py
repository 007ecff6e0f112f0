"""Weight clustering for Keras 3 models, which tfmot does not support.

Written here because tfmot's clustering needs tf_keras. Each selected kernel gets a
variable constraint that Keras 3 applies inside the optimizer step, right after every
update: the centroids become the means of their members (so each centroid moves by the
average update of the weights assigned to it — the centroids are trained through their
members) and every weight is replaced by its centroid. Centroids start where tfmot's
initialisers put them (`clustering.init`); assignments are fixed at initialisation
(tfmot re-assigns to the nearest centroid every step); with `preserve_sparsity`, zero
is one of the clusters and stays pinned at 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt._layers import Target
from edgeopt.clustering.init import CentroidInit, assign, init_centroids


class ClusterProjection:
    """Keras 3 variable constraint: tie a kernel to `segments` shared values."""

    def __init__(self, indices: np.ndarray, segments: int, zero_index: int | None):
        import tensorflow as tf

        self.indices = tf.constant(indices.ravel(), dtype=tf.int32)
        self.segments = int(segments)
        self.zero_index = zero_index
        self.keep = None
        if zero_index is not None:  # the zero centroid is pinned at 0
            self.keep = tf.constant([0.0 if i == zero_index else 1.0 for i in range(self.segments)])

    def __call__(self, weight):
        import tensorflow as tf

        flat = tf.reshape(weight, [-1])
        centroids = tf.math.unsorted_segment_mean(flat, self.indices, self.segments)
        if self.keep is not None:
            centroids = centroids * tf.cast(self.keep, centroids.dtype)
        return tf.reshape(tf.gather(centroids, self.indices), tf.shape(weight))


def cluster_targets(targets: list[Target], clusters: int, init: CentroidInit, preserve_sparsity: bool) -> None:
    """Initialises and ties the kernels of `targets` (layers of a fresh clone).

    As in tfmot, each weight starts at its nearest initial centroid; with
    `preserve_sparsity` zero is one of the `clusters` centroids, and it holds every
    weight that was zero (and any weight nearest to it) at 0 for good.
    """
    for target in targets:
        values = target.read()
        flat = values.ravel()
        centroids, zero_index = init_centroids(flat, clusters, init, preserve_sparsity=preserve_sparsity)
        indices = assign(flat, centroids)
        if zero_index is not None:
            indices[flat == 0] = zero_index
        target.variable.constraint = ClusterProjection(indices, centroids.size, zero_index)
        target.variable.assign(centroids[indices].reshape(values.shape).astype(values.dtype))


def strip(model: Any) -> Any:
    """A copy of `model` with plain layers; kernels keep their clustered values."""
    from edgeopt._keras import clone_with_weights

    return clone_with_weights(model)
