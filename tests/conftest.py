"""Shared fixtures: digits data, small trained models of both Keras flavours, saved files."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from edgeopt.datasets import load_digits_splits
from edgeopt.models import digits_cnn

FLAVOURS = ["keras3", "tf_keras"]

# Device-harness fixtures (loopback sshd, device venv, stand-in adb) for tests/bench and tests/cli.
pytest_plugins = ["tests.bench.fixtures_harness"]


@pytest.fixture(scope="session")
def digits():
    return load_digits_splits()


def train_digits_cnn(digits, flavour: str, epochs: int = 10):
    from edgeopt._keras import keras_module

    keras_module(flavour).utils.set_random_seed(0)
    model = digits_cnn(flavour=flavour, width=8)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(digits.x_train, digits.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def keras3_model(digits):
    return train_digits_cnn(digits, "keras3")


@pytest.fixture(scope="session")
def tf_keras_model(digits):
    return train_digits_cnn(digits, "tf_keras")


@pytest.fixture(scope="session")
def trained(request, digits):
    """`trained("keras3")` / `trained("tf_keras")`: the session's trained model of that flavour."""
    return lambda flavour: request.getfixturevalue(f"{flavour}_model")


@pytest.fixture(scope="session")
def data_files(tmp_path_factory, digits, keras3_model):
    """calib.npz (x), test.npz (x, y) and model.keras on disk, as a CLI user has them."""
    root = tmp_path_factory.mktemp("data")
    np.savez(root / "calib.npz", x=digits.x_train[:100])
    np.savez(root / "test.npz", x=digits.x_test[:120], y=digits.y_test[:120])
    keras3_model.save(root / "model.keras")
    return root


def outlier_dense_model(digits, flavour: str = "keras3"):
    """A digits MLP whose first input row holds a huge weight: harmless in float (pixel
    (0, 0) of every digit is 0) but it ruins any 8-bit scale, so int8 accuracy collapses."""
    from edgeopt._keras import keras_module

    k = keras_module(flavour)
    k.utils.set_random_seed(0)
    model = k.Sequential([k.Input((8, 8, 1)), k.layers.Flatten(), k.layers.Dense(32, activation="relu"),
                          k.layers.Dense(10, activation="softmax")], name="outlier_mlp")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(digits.x_train, digits.y_train, epochs=8, batch_size=32, verbose=0)
    kernel, bias = model.layers[1].get_weights()
    kernel[0, :] = 1000.0
    model.layers[1].set_weights([kernel, bias])
    return model
