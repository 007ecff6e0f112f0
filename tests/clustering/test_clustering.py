"""Weight clustering on both Keras flavours: distinct values, sparsity, input untouched."""

from __future__ import annotations

import numpy as np
import pytest

import edgeopt
from edgeopt import ConfigError, ConstantSparsity, Pruning, cluster_weights, strip_clustering
from tests.pruning.test_callback import fresh

KERNELS = ("conv1", "conv2", "dense1", "logits")


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
        assert (kernel[zeros] == 0).all() and len(np.unique(kernel)) <= 9
        assert len(np.unique(final.get_layer("conv1").get_weights()[0])) > 8  # excluded
        dense = edgeopt.export_tflite(model, ["float32"], output_dir=tmp_path / "a")["float32"]
        shared = edgeopt.export_tflite(final, ["float32"], output_dir=tmp_path / "b")["float32"]
        assert shared.size_bytes == pytest.approx(dense.size_bytes, rel=0.05)
        assert shared.gzip_size_bytes < 0.5 * dense.gzip_size_bytes


class TestKeras3Clustering(ClusteringContract):
    flavour = "keras3"


class TestTfKerasClustering(ClusteringContract):
    flavour = "tf_keras"


@pytest.mark.parametrize("kwargs, message", [(dict(clusters=1), "clusters must be an integer >= 2"),
                                             (dict(init="random"), "Unknown centroid init"),
                                             (dict(include=["nope*"]), r"matched nothing: \['nope\*'\]")])
def test_bad_arguments(keras3_model, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        cluster_weights(keras3_model, **kwargs)
