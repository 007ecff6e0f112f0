"""Telling Keras 3 from tf_keras, for objects and files, and loading safely."""

from __future__ import annotations

import pytest

from edgeopt import ConfigError, InvalidModelError
from edgeopt._keras import Flavour, file_flavour, flavour_of, load_model
from edgeopt.convert.source import KerasSource, SavedModelSource, open_source


def test_flavour_of_objects(keras3_model, tf_keras_model):
    assert flavour_of(keras3_model) is Flavour.KERAS3
    assert flavour_of(tf_keras_model) is Flavour.TF_KERAS
    with pytest.raises(ConfigError, match="Received: an object of type builtins.dict"):
        flavour_of({})


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_files_load_with_the_keras_that_wrote_them(keras3_model, tf_keras_model, tmp_path, suffix, digits):
    for model, flavour in ((keras3_model, Flavour.KERAS3), (tf_keras_model, Flavour.TF_KERAS)):
        path = tmp_path / f"{flavour}{suffix}"
        model.save(path)
        assert file_flavour(path) is flavour
        loaded = load_model(path)
        assert flavour_of(loaded) is flavour
        assert (loaded.predict(digits.x_test[:5], verbose=0).argmax(1)
                == model.predict(digits.x_test[:5], verbose=0).argmax(1)).all()


def test_saved_model_directory(keras3_model, tmp_path, digits):
    keras3_model.export(str(tmp_path / "sm"), format="tf_saved_model", verbose=False)
    source = open_source(tmp_path / "sm", unsafe=True)
    assert isinstance(source, SavedModelSource)
    assert source.input_info.shape == (None, 8, 8, 1) and source.input_info.dtype == "float32"
    assert source.predict(digits.x_test[:3]).shape == (3, 10)


def test_lambda_layer_needs_unsafe(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2.0), keras.layers.Dense(2)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(InvalidModelError, match="Lambda layer.*--unsafe"):
        load_model(path)
    assert isinstance(open_source(path, unsafe=True), KerasSource)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.keras", "Model not found"),
        (lambda p: p, "not a SavedModel"),
        (lambda p: (p / "m.onnx").write_bytes(b"x") and p / "m.onnx", "Unknown model format '.onnx'"),
        (lambda p: (p / "bad.keras").write_bytes(b"not a zip") and p / "bad.keras", "Cannot read .keras"),
    ],
)
def test_bad_model_paths(tmp_path, make, message):
    with pytest.raises(InvalidModelError, match=message):
        open_source(make(tmp_path))


def test_multi_output_model_is_read_with_named_outputs():
    """Issue 12 item 3: several outputs were refused; now each has a name and an array."""
    import keras
    import numpy as np

    inputs = keras.Input((4,))
    model = keras.Model(inputs, [keras.layers.Dense(1, name="a")(inputs), keras.layers.Dense(2, name="b")(inputs)])
    source = KerasSource(model)
    outputs = source.predict_all([np.ones((3, 4), np.float32)])
    assert source.output_names == ["a", "b"] and [o.shape for o in outputs] == [(3, 1), (3, 2)]
