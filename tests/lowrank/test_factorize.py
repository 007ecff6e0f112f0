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
