"""Weight clustering on both Keras flavours: distinct values, sparsity, input untouched."""

from __future__ import annotations

import numpy as np
import pytest

import edgeopt
from edgeopt import ConfigError, ConstantSparsity, Pruning, cluster_weights, strip_clustering
from edgeopt.models import digits_cnn
from tests.pruning.test_callback import fresh

KERNELS = ("conv1", "conv2", "dense1", "logits")
CLUSTERS = 8


class ClusteringContract:
    flavour: str

    @pytest.fixture
    def model(self, trained):
        return trained(self.flavour)

    def cluster_fit_strip(self, model, digits, **kwargs):
        clustered = cluster_weights(model, **kwargs)
        clustered.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        clustered.fit(digits.x_train, digits.y_train, epochs=1, batch_size=64, verbose=0)
        return strip_clustering(clustered)

    @pytest.mark.parametrize("init", ["kmeans++", "linear", "density"])
    def test_each_kernel_holds_at_most_k_values(self, model, digits, init):
        before = [w.copy() for w in model.get_weights()]
        final = self.cluster_fit_strip(model, digits, clusters=8, init=init)
        for name in KERNELS:
            assert len(np.unique(final.get_layer(name).get_weights()[0])) <= 8, name
        assert len(np.unique(final.get_layer("dense1").get_weights()[1])) > 8  # biases are not clustered
        for a, b in zip(before, model.get_weights()):
            np.testing.assert_array_equal(a, b)  # the input model is untouched
        final.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        base = np.mean(model.predict(digits.x_test, verbose=0).argmax(1) == digits.y_test)
        accuracy = np.mean(final.predict(digits.x_test, verbose=0).argmax(1) == digits.y_test)
        assert accuracy > base - 0.05

    def test_preserve_sparsity_and_gzip_win(self, digits, tmp_path):
        model = fresh(self.flavour)
        model.fit(digits.x_train, digits.y_train, epochs=2, batch_size=64, verbose=0,
                  callbacks=[Pruning(ConstantSparsity(0.5), frequency=5)])
        zeros = model.get_layer("dense1").get_weights()[0] == 0
        final = self.cluster_fit_strip(model, digits, clusters=8, preserve_sparsity=True, exclude=["conv1"])
        kernel = final.get_layer("dense1").get_weights()[0]
        assert (kernel[zeros] == 0).all() and len(np.unique(kernel)) <= 8  # zero is one of the 8
        assert len(np.unique(final.get_layer("conv1").get_weights()[0])) > 8  # excluded
        dense = edgeopt.export_tflite(model, ["float32"], output_dir=tmp_path / "a")["float32"]
        shared = edgeopt.export_tflite(final, ["float32"], output_dir=tmp_path / "b")["float32"]
        assert shared.size_bytes == pytest.approx(dense.size_bytes, rel=0.05)
        assert shared.gzip_size_bytes < 0.5 * dense.gzip_size_bytes


    def test_preserve_sparsity_counts_zero_among_the_clusters(self, digits):
        model = fresh(self.flavour)
        model.fit(digits.x_train, digits.y_train, epochs=1, batch_size=64, verbose=0,
                  callbacks=[Pruning(ConstantSparsity(0.5), frequency=5)])
        before = {name: model.get_layer(name).get_weights()[0] == 0 for name in KERNELS}
        final = self.cluster_fit_strip(model, digits, clusters=4, preserve_sparsity=True)
        for name in KERNELS:
            kernel = final.get_layer(name).get_weights()[0]
            values = np.unique(kernel)
            assert len(values) <= 4 and 0 in values, (name, values)  # 4 clusters = 2-bit indices, zero included
            assert (kernel[before[name]] == 0).all(), name


class TestKeras3Clustering(ClusteringContract):
    flavour = "keras3"


class TestTfKerasClustering(ClusteringContract):
    flavour = "tf_keras"


@pytest.mark.parametrize("kwargs, message", [(dict(clusters=1), "clusters must be an integer >= 2"),
                                             (dict(clusters=True), "clusters must be an integer >= 2"),
                                             (dict(clusters=8.0), "clusters must be an integer >= 2"),
                                             (dict(clusters=2, preserve_sparsity=True), "needs clusters >= 3"),
                                             (dict(init="random"), "Unknown centroid init"),
                                             (dict(include=["nope*"]), r"matched nothing: \['nope\*'\]")])
def test_bad_arguments(keras3_model, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        cluster_weights(keras3_model, **kwargs)


def twins(keras3_model, prune: bool):
    """The session's trained Keras 3 model and a tf_keras twin holding the same weights
    (with `prune`, the smallest half of every kernel set to zero first)."""
    from edgeopt._keras import clone_with_weights

    source = clone_with_weights(keras3_model)
    if prune:
        for name in KERNELS:
            layer = source.get_layer(name)
            weights = layer.get_weights()
            weights[0] = np.where(np.abs(weights[0]) < np.median(np.abs(weights[0])), 0, weights[0])
            layer.set_weights(weights)
    twin = digits_cnn(flavour="tf_keras", width=8)
    twin.set_weights(source.get_weights())
    return source, twin


@pytest.mark.parametrize("preserve_sparsity", [False, True])
@pytest.mark.parametrize("init", ["kmeans++", "linear", "density"])
def test_both_flavours_give_the_same_clusters(keras3_model, init, preserve_sparsity):
    keras3, tf_keras = twins(keras3_model, prune=preserve_sparsity)
    ours = strip_clustering(cluster_weights(keras3, clusters=8, init=init, preserve_sparsity=preserve_sparsity))
    tfmot = strip_clustering(cluster_weights(tf_keras, clusters=8, init=init, preserve_sparsity=preserve_sparsity))
    for name in KERNELS:
        a, b = ours.get_layer(name).get_weights()[0], tfmot.get_layer(name).get_weights()[0]
        assert len(np.unique(a)) <= 8
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f"{name} {init}")


def test_initial_centroids_are_tfmots(keras3_model):
    """edgeopt's numpy initialisers against tfmot's own, on real kernels and random ones."""
    import tensorflow as tf

    from edgeopt._keras import import_tfmot
    from edgeopt.clustering.centroids import CentroidInit, init_centroids

    tfmot = import_tfmot()
    from tensorflow_model_optimization.python.core.clustering.keras import clustering_centroids

    names = {CentroidInit.LINEAR: "LINEAR", CentroidInit.DENSITY: "DENSITY_BASED",
             CentroidInit.KMEANS_PLUS_PLUS: "KMEANS_PLUS_PLUS"}
    rng = np.random.default_rng(0)
    kernels = [keras3_model.get_layer(n).get_weights()[0] for n in KERNELS]
    kernels += [rng.standard_normal((40, 3)).astype("float32") * 0.1, rng.laplace(size=200).astype("float32")]
    kernels.append(np.where(rng.random((30, 10)) < 0.7, 0, rng.standard_normal((30, 10))).astype("float32"))
    for kernel in kernels:
        for init, name in names.items():
            for k in (3, 8, 16):
                for preserve in (False, True):
                    initialiser = clustering_centroids.CentroidsInitializerFactory.get_centroid_initializer(
                        getattr(tfmot.clustering.keras.CentroidInitialization, name))
                    expected = initialiser(tf.constant(kernel), k, False, "channels_last", preserve)
                    centroids, zero = init_centroids(kernel, k, init, preserve_sparsity=preserve)
                    np.testing.assert_allclose(centroids, expected.get_cluster_centroids().numpy(), atol=1e-6,
                                               err_msg=f"{init} k={k} preserve={preserve}")
                    assert (zero is not None) is preserve and (zero is None or centroids[zero] == 0)


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_kernels_no_larger_than_the_clusters_are_left_alone(flavour):
    from edgeopt._keras import keras_module

    k = keras_module(flavour)
    model = k.Sequential([k.Input((8,)), k.layers.Dense(6, name="big"), k.layers.Dense(1, name="tiny")])
    with pytest.warns(UserWarning, match=r"no more weights than clusters=16: \['tiny'\]"):
        final = strip_clustering(cluster_weights(model, clusters=16, init="kmeans++"))
    assert len(np.unique(final.get_layer("big").get_weights()[0])) <= 16
    np.testing.assert_array_equal(final.get_layer("tiny").get_weights()[0], model.get_layer("tiny").get_weights()[0])
    with pytest.raises(ConfigError, match="No selected kernel has more weights than clusters=64"):
        cluster_weights(model, clusters=64)


def subclassed_net(flavour, with_config=False):
    """A built subclassed model with a constructor argument, as people write them."""
    from edgeopt._keras import keras_module

    k = keras_module(flavour)

    class Net(k.Model):
        def __init__(self, width, **kwargs):
            super().__init__(**kwargs)
            self.width = width
            self.hidden = k.layers.Dense(width, activation="relu", name="hidden")
            self.out = k.layers.Dense(4, name="out")

        def call(self, inputs):
            return self.out(self.hidden(inputs))

        if with_config:
            def get_config(self):
                return {**super().get_config(), "width": self.width}

    k.utils.set_random_seed(0)
    model = Net(32, name="net")
    model(np.zeros((1, 8), "float32"))
    return model


@pytest.mark.parametrize("flavour, message", [
    ("keras3", r"Keras cannot rebuild it from its config.*Received: a .*Net model named 'net'.*get_config\(\)"),
    ("tf_keras", r"only works for functional and Sequential models\. Received: a .*Net model named 'net', "
                 r"a subclassed model\. Build the same layers with the functional API")])
def test_a_subclassed_model_is_a_config_error(flavour, message):
    model = subclassed_net(flavour)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ConfigError, match=message):
        cluster_weights(model, clusters=4)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras3_clusters_a_subclassed_model_that_rebuilds_from_its_config():
    model = subclassed_net("keras3", with_config=True)
    clustered = cluster_weights(model, clusters=4)
    clustered.compile(optimizer="adam", loss="mse")
    clustered.fit(np.ones((8, 8), "float32"), np.zeros((8, 4), "float32"), verbose=0)
    final = strip_clustering(clustered)
    assert type(final).__name__ == "Net" and final is not clustered
    for name in ("hidden", "out"):
        assert len(np.unique(final.get_layer(name).get_weights()[0])) <= 4
    assert len(np.unique(model.get_layer("hidden").get_weights()[0])) > 4  # the input is untouched


def depthwise_net(flavour):
    from edgeopt._keras import keras_module

    k = keras_module(flavour)
    k.utils.set_random_seed(0)
    return k.Sequential([k.Input((8, 8, 1)), k.layers.Conv2D(8, 3, name="conv"),
                         k.layers.DepthwiseConv2D(3, depth_multiplier=2, name="depthwise"),
                         k.layers.Flatten(), k.layers.Dense(10, name="logits")])


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_depthwise_kernels_are_clustered_in_both_flavours(digits, flavour):
    """tfmot lists DepthwiseConv2D with no clusterable weight: its wrapper would train the
    kernel unclustered. edgeopt's own constraint clusters it, in training and after strip."""
    from edgeopt._keras import keras_module

    model = depthwise_net(flavour)
    clustered = cluster_weights(model, clusters=CLUSTERS)
    loss = keras_module(flavour).losses.SparseCategoricalCrossentropy(from_logits=True)
    clustered.compile(optimizer="adam", loss=loss)
    clustered.fit(digits.x_train[:256], digits.y_train[:256], epochs=1, batch_size=32, verbose=0)
    trained = clustered.get_layer("depthwise").get_weights()[0]
    assert len(np.unique(trained)) <= CLUSTERS  # clustered while it trained
    final = strip_clustering(clustered)
    for name in ("conv", "depthwise", "logits"):
        assert len(np.unique(final.get_layer(name).get_weights()[0])) <= CLUSTERS, name
    assert final.get_layer("depthwise") is not clustered.get_layer("depthwise")
    variable = final.get_layer("depthwise").depthwise_kernel if flavour == "tf_keras" \
        else final.get_layer("depthwise").kernel
    assert variable.constraint is None  # a plain model: further training is free
    assert len(np.unique(model.get_layer("depthwise").get_weights()[0])) > CLUSTERS  # the input is untouched


def test_tf_keras_layers_inside_a_nested_model_are_clustered():
    """tfmot wraps the top-level layers it is handed; a nested backbone's kernels get
    edgeopt's constraint instead of being left alone."""
    from edgeopt._keras import keras_module

    k = keras_module("tf_keras")
    k.utils.set_random_seed(0)
    backbone = k.Sequential([k.Input((8,)), k.layers.Dense(16, name="inner")], name="backbone")
    model = k.Sequential([k.Input((8,)), backbone, k.layers.Dense(4, name="head")])
    clustered = cluster_weights(model, clusters=4)
    clustered.compile(optimizer="adam", loss="mse")
    clustered.fit(np.ones((8, 8), "float32"), np.zeros((8, 4), "float32"), verbose=0)
    final = strip_clustering(clustered)
    assert len(np.unique(final.get_layer("backbone").get_layer("inner").get_weights()[0])) <= 4
    assert len(np.unique(final.get_layer("head").get_weights()[0])) <= 4
