"""Weight clustering (weight sharing) during `fit`, for Keras 3 and tf_keras models."""

from edgeopt.clustering.api import cluster_weights, strip_clustering

__all__ = ["cluster_weights", "strip_clustering"]
