"""edgeopt's own weight clustering: a variable constraint that ties a kernel to centroids.

Written here because tfmot's clustering needs tf_keras, and leaves some kernels alone
even there. It clusters every kernel of a Keras 3 model, and in a tf_keras model the
kernels tfmot does not: DepthwiseConv2D (tfmot's registry lists it with no clusterable
weight, so its wrapper trains it unclustered) and layers inside nested models (the wrapping
pass over a model sees its top-level layers only). Each such kernel gets a variable constraint
that both Kerases' optimizers apply inside the optimizer step, right after every
update: the centroids become the means of their members (so each centroid moves by the
average update of the weights assigned to it — the centroids are trained through their
members) and every weight is replaced by its centroid. Centroids start where tfmot's
initialisers put them (`clustering.centroids`); assignments are fixed at initialisation
(tfmot re-assigns to the nearest centroid every step); with `preserve_sparsity`, zero
is one of the clusters and stays pinned at 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt import _cloning
from edgeopt._layers import Target
from edgeopt.clustering.centroids import CentroidInit, assign, init_centroids


class ClusterProjection:
    """A variable constraint (either Keras): tie a kernel to `segments` shared values."""

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
        _set_constraint(target.variable, ClusterProjection(indices, centroids.size, zero_index))
        target.variable.assign(centroids[indices].reshape(values.shape).astype(values.dtype))


def _set_constraint(variable: Any, constraint: ClusterProjection) -> None:
    try:
        variable.constraint = constraint  # a Keras 3 variable
    except AttributeError:
        # A tf.Variable (tf_keras) takes its constraint only when created; the attribute
        # behind the read-only property is what tf_keras' optimizers apply after each step.
        variable._constraint = constraint


def strip(model: Any) -> Any:
    """A copy of `model` with plain layers (no constraints); kernels keep their clustered values."""
    return _cloning.clone(model, "strip_clustering")
