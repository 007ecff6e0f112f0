"""`cluster_weights` / `strip_clustering`: weight sharing for Keras 3 and tf_keras.

tf_keras models go through tfmot's clustering, on a copy (tfmot wraps the layer
objects it is given, which would change the caller's model), except for the kernels
tfmot leaves unclustered (DepthwiseConv2D, layers inside nested models): those, and
every kernel of a Keras 3 model, go through edgeopt's own constraint-based clustering
(`clustering.projection`). Either way the input model is left untouched and a new
model is returned. Subclassed models cannot be copied layer by layer: tf_keras ones,
and Keras 3 ones whose `get_config` does not rebuild them, are a `ConfigError`.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

from edgeopt import _cloning, _keras
from edgeopt._checks import is_integer
from edgeopt._layers import WEIGHT_LAYER_TYPES, Target, select_layers
from edgeopt.clustering import projection
from edgeopt.clustering.centroids import CentroidInit, parse_init
from edgeopt.errors import ConfigError

_TFMOT_INIT = {CentroidInit.KMEANS_PLUS_PLUS: "KMEANS_PLUS_PLUS", CentroidInit.LINEAR: "LINEAR",
               CentroidInit.DENSITY: "DENSITY_BASED"}


def cluster_weights(model: Any, clusters: int = 16, *, init: str = "kmeans++", preserve_sparsity: bool = False,
                    layer_types: Sequence[str] = WEIGHT_LAYER_TYPES, include: Sequence[str] | None = None,
                    exclude: Sequence[str] = (), min_params: int = 0) -> Any:
    """Returns a copy of `model` whose selected kernels share `clusters` values.

    Compile and `fit` the returned model as usual, then call `strip_clustering` on it.

    Example:

    ```python
    clustered = edgeopt.cluster_weights(model, clusters=16, init="kmeans++")
    clustered.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    clustered.fit(x, y, epochs=2)
    final = edgeopt.strip_clustering(clustered)   # each kernel: at most 16 distinct values
    ```

    Args:
        model: a Keras 3 or tf_keras model; not modified. Functional or Sequential
            (Keras 3 also copies a subclassed model whose `get_config` rebuilds it).
        clusters: shared values per kernel (>= 2), zero included with
            `preserve_sparsity`: a kernel never holds more than `clusters` distinct values.
            Defaults to `16`.
        init: `"kmeans++"`, `"linear"` or `"density"`: tfmot's `KMEANS_PLUS_PLUS`,
            `LINEAR` and `DENSITY_BASED`, the same centroids for the same weights in both
            flavours (see `edgeopt.clustering.centroids`). Defaults to `"kmeans++"`.
        preserve_sparsity: pruned zeros stay exactly zero; zero is one of the
            `clusters` centroids (needs `clusters >= 3`). Defaults to `False`.
        layer_types: layer types to cluster. Defaults to Dense, Conv1D, Conv2D, DepthwiseConv2D.
        include: layer-name patterns to cluster. Defaults to `None` (all).
        exclude: layer-name patterns to leave alone. Defaults to `()`.
        min_params: skip kernels with fewer weights. Defaults to `0`.

    Raises:
        ConfigError: bad arguments, nothing to cluster, or a model that cannot be copied.
    """
    clusters, init = check_clustering_arguments(clusters, init, preserve_sparsity)
    flavour = _keras.flavour_of(model)
    selection = dict(layer_types=layer_types, include=include, exclude=exclude, min_params=min_params,
                     what="clustering")
    _targets(model, clusters, selection)  # fail on the caller's model before copying
    clone = _cloning.clone(model, "cluster_weights")
    targets = _targets(clone, clusters, selection, warn=True)
    if flavour is _keras.Flavour.KERAS3:
        projection.cluster_targets(targets, clusters, init, preserve_sparsity)
        return clone
    return _tf_keras_cluster(clone, targets, clusters, init, preserve_sparsity)


def check_clustering_arguments(clusters: Any, init: Any, preserve_sparsity: Any) -> tuple[int, CentroidInit]:
    """`cluster_weights`'s checks that need no model (recipes validate steps with them).

    Returns:
        `clusters` as an `int` and `init` as a `CentroidInit`.

    Raises:
        ConfigError: naming the argument and its value.
    """
    if not is_integer(clusters) or clusters < 2:
        raise ConfigError(f"clusters must be an integer >= 2. Received: clusters={clusters!r}. "
                          "16 clusters (4-bit indices) is a common start.")
    clusters = int(clusters)
    if preserve_sparsity and clusters < 3:
        raise ConfigError(f"preserve_sparsity needs clusters >= 3: zero is one of them. Received: clusters={clusters}. "
                          "Use clusters=3 or more, or preserve_sparsity=False.")
    return clusters, parse_init(init)


def _targets(model: Any, clusters: int, selection: dict, warn: bool = False) -> list:
    """The selected kernels with more weights than `clusters` (the others already hold at
    most `clusters` values; tfmot's kmeans++ would fail on them)."""
    targets = select_layers(model, **selection)
    small = [t.name for t in targets if t.size <= clusters]
    if len(small) == len(targets):
        raise ConfigError(f"No selected kernel has more weights than clusters={clusters}. Received: layers {small}. "
                          "Lower clusters or select larger layers.")
    if small and warn:
        warnings.warn(f"clustering: left as they are, having no more weights than clusters={clusters}: {small}",
                      stacklevel=3)
    return [t for t in targets if t.size > clusters]


def _tf_keras_cluster(clone: Any, targets: list[Target], clusters: int, init: CentroidInit,
                      preserve_sparsity: bool) -> Any:
    """tfmot wraps the top-level layers whose kernels it clusters; the kernels it would
    leave alone get edgeopt's constraint (the layers stay the same objects either way)."""
    top_level = {id(layer) for layer in clone.layers}
    by_tfmot = {id(t.layer) for t in targets if id(t.layer) in top_level and t.type != "DepthwiseConv2D"}
    projection.cluster_targets([t for t in targets if id(t.layer) not in by_tfmot], clusters, init, preserve_sparsity)
    if not by_tfmot:
        return clone
    return _tfmot_cluster(clone, by_tfmot, clusters, init, preserve_sparsity)


def _tfmot_cluster(clone: Any, layer_ids: set[int], clusters: int, init: CentroidInit, preserve_sparsity: bool) -> Any:
    tfmot = _keras.import_tfmot()
    tf_keras = _keras.keras_module(_keras.Flavour.TF_KERAS)
    params = {"number_of_clusters": clusters, "preserve_sparsity": preserve_sparsity,
              "cluster_centroids_init": getattr(tfmot.clustering.keras.CentroidInitialization, _TFMOT_INIT[init])}

    def wrap(layer):
        return tfmot.clustering.keras.cluster_weights(layer, **params) if id(layer) in layer_ids else layer

    # `clone` is already a private copy, so tfmot may wrap its layer objects.
    return tf_keras.models.clone_model(clone, clone_function=wrap)


def strip_clustering(model: Any) -> Any:
    """A new plain model (no wrappers, no constraints) with the clustered kernel values.

    The clustered model is left as it is (and shares no layer with the result).
    """
    if _keras.flavour_of(model) is _keras.Flavour.KERAS3:
        return projection.strip(model)
    _cloning.require_graph_model(model, "strip_clustering")
    tfmot = _keras.import_tfmot()
    # tfmot's strip returns the clustered model's own layer objects where it found no
    # wrapper (the depthwise kernels constrained by edgeopt among them): copy once more.
    return projection.strip(tfmot.clustering.keras.strip_clustering(model))
