"""Low-rank factorization: SVD reconstruction, predictions before fine-tuning, errors."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt import ConfigError, factorize
from tests.conftest import FLAVOURS


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_factorized_model_predicts_close_and_fine_tunes(trained, digits, flavour):
    model = trained(flavour)
    before = [w.copy() for w in model.get_weights()]
    new, plan = factorize(model, rank=40, include=["dense1"], return_plan=True)
    (step,) = plan
    w = model.get_layer("dense1").get_weights()[0]
    assert (step.layer, step.rank, step.params_after) == ("dense1", 40, 40 * sum(w.shape))
    a = new.get_layer("dense1").get_layer("dense1_lr_a").get_weights()[0]
    b = new.get_layer("dense1").get_layer("dense1_lr_b").get_weights()[0]
    s = np.linalg.svd(w, compute_uv=False)
    error = np.linalg.norm(w - a @ b) / np.linalg.norm(w)
    assert error == pytest.approx(np.sqrt(np.sum(s[40:] ** 2) / np.sum(s**2)), rel=1e-3)
    assert new.count_params() < model.count_params()
    old_out = model.predict(digits.x_test, verbose=0)
    new_out = new.predict(digits.x_test, verbose=0)
    assert np.mean(old_out.argmax(1) == new_out.argmax(1)) > 0.95
    assert np.abs(old_out - new_out).mean() < 0.02
    for x, y in zip(before, model.get_weights()):
        np.testing.assert_array_equal(x, y)
    new.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = new.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert history.history["accuracy"][-1] > 0.9


def test_energy_picks_the_rank_and_pointwise_conv():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 32))
    x = keras.layers.Conv2D(48, 1, activation="relu", name="pw")(inputs)
    x = keras.layers.Conv2D(8, 3, name="k3")(x)
    model = keras.Model(inputs, keras.layers.Flatten()(x))
    new, plan = factorize(model, energy=0.5, return_plan=True)
    assert [p.layer for p in plan] == ["pw"] and plan[0].energy >= 0.5 and plan[0].rank < 32
    x = np.random.default_rng(0).standard_normal((4, 6, 6, 32)).astype("float32")
    full = factorize(model, rank=32)  # full rank: same function
    np.testing.assert_allclose(full.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)
    assert new.count_params() < model.count_params()


@pytest.mark.parametrize("kwargs, message", [(dict(rank=0), "rank must be a positive integer"),
                                             (dict(rank=100), r"rank is larger than layer 'dense1' allows.*at most 64"),
                                             (dict(energy=1.5), r"energy must be in \(0, 1\]")])
def test_bad_arguments(keras3_model, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        factorize(keras3_model, **kwargs)


def test_no_reduction_warns(keras3_model):
    with pytest.warns(UserWarning, match="no selected layer would get fewer parameters"):
        factorize(keras3_model, energy=1.0, include=["logits"])


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_subclassed_model_is_a_config_error(flavour):
    from tests.clustering.test_clustering import subclassed_net

    for with_config in (False, True):  # even one that rebuilds from its config has no layer graph to rewrite
        model = subclassed_net(flavour, with_config=with_config and flavour == "keras3")
        with pytest.raises(ConfigError, match=r"factorize rebuilds the model layer by layer, which only works for "
                                              r"functional and Sequential models\. Received: a .*Net model named 'net'"):
            factorize(model, rank=2)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_layer_that_cannot_be_rebuilt_is_a_config_error(flavour):
    from edgeopt._keras import keras_module

    k = keras_module(flavour)

    class Apply(k.layers.Layer):  # a function argument and no get_config
        def __init__(self, fn, **kwargs):
            super().__init__(**kwargs)
            self.fn = fn

        def call(self, inputs):
            return self.fn(inputs)

    inputs = k.Input((8,))
    model = k.Model(inputs, k.layers.Dense(16, name="wide")(Apply(lambda x: 2 * x, name="apply")(inputs)))
    with pytest.raises(ConfigError, match=r"factorize needs a copy of the model, and Keras cannot rebuild it from "
                                          r"its config: .*Apply was created by passing non-serializable argument.*"
                                          r"Received: a .*Functional model"):
        factorize(model, rank=2)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_layers_inside_a_nested_model_are_left_alone_with_a_warning(flavour):
    from edgeopt._keras import keras_module

    k = keras_module(flavour)
    k.utils.set_random_seed(0)
    backbone = k.Sequential([k.Input((32,)), k.layers.Dense(32, name="inner")], name="backbone")
    model = k.Sequential([k.Input((32,)), backbone, k.layers.Dense(32, name="head")])
    with pytest.warns(UserWarning, match=r"layers inside nested models are left as they are: \['inner'\]"):
        new, plan = factorize(model, rank=2, return_plan=True)
    assert [p.layer for p in plan] == ["head"]  # the plan says only what was done
    assert new.get_layer("head").get_layer("head_lr_a").kernel.shape == (32, 2)
    x = np.random.default_rng(0).standard_normal((4, 32)).astype("float32")
    np.testing.assert_allclose(new.get_layer("backbone")(x), model.get_layer("backbone")(x), atol=1e-6)
    with pytest.raises(ConfigError, match=r"only layers inside nested models: \['inner'\]"), pytest.warns(UserWarning):
        factorize(model, rank=2, include=["inner"])
