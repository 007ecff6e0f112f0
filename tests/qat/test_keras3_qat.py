"""edgeopt's own Keras 3 QAT: numerics, fully-int8 conversion, accuracy, save/load, sparsity."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import edgeopt
from edgeopt import ConfigError, ConstantSparsity, KeepSparsity, Pruning, quantize_aware
from edgeopt.convert.inspect import constant_tensors, inspect_tflite, parse_model
from edgeopt.qat.keras3 import _fake_quant_kernel
from edgeopt.qat.keras3_layers import _dense_equation


def qat_fit(model, x, y, epochs=1, callbacks=()):
    qat = quantize_aware(model)
    qat.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    qat.fit(x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=list(callbacks))
    return qat


@pytest.fixture(scope="module")
def digits_qat(keras3_model, digits, tmp_path_factory):
    before = [w.copy() for w in keras3_model.get_weights()]
    qat = qat_fit(keras3_model, digits.x_train, digits.y_train, epochs=2)
    out = tmp_path_factory.mktemp("k3qat")
    report = edgeopt.export_tflite(qat, ["int8"], output_dir=out, eval_data=(digits.x_test, digits.y_test))
    return qat, report["int8"], before


def test_input_model_untouched_and_layers_rewritten(keras3_model, digits_qat):
    qat, _, before = digits_qat
    for a, b in zip(before, keras3_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    names = [l.name for l in qat.layers]
    # one quantizer after the Conv-BN-ReLU block, none between conv1, bn1 and relu1
    assert names.index("relu1_quant") == names.index("relu1") + 1 and "conv1_quant" not in names
    assert "image_quant" in names and "flatten_quant" not in names
    assert type(qat.get_layer("conv1")).__name__ == "FakeQuantConv2D"
    # the softmax output's fixed range lives inside the layer, which keeps the output's name
    assert qat.output_names == keras3_model.output_names == ["logits"]
    assert qat.get_layer("logits")._points["out"] == (0.0, 255 / 256)


def test_fully_int8_and_accuracy_matches_keras(digits_qat, digits, tmp_path, keras3_model):
    qat, entry, _ = digits_qat
    assert entry.fully_integer and entry.float_ops == {} and entry.input_dtype == "int8"
    info = inspect_tflite(entry.path)
    assert info.fully_integer and info.integer_io
    keras_accuracy = qat.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
    assert abs(entry.validation["accuracy"] - keras_accuracy) * 100 <= 0.5
    ptq = edgeopt.export_tflite(keras3_model, ["int8"], output_dir=tmp_path, calibration_data=digits.x_train,
                                eval_data=(digits.x_test, digits.y_test))["int8"]
    assert entry.validation["accuracy"] >= ptq.validation["accuracy"] - 0.005


def test_quantized_weights_equal_what_tflite_stores(digits_qat):
    qat, entry, _ = digits_qat
    data = open(entry.path, "rb").read()
    model = parse_model(data)
    graph = model.subgraphs[0]
    stored = {}
    for tensor in graph.tensors:
        if tensor.type == 9 and tensor.quantization is not None and tensor.quantization.scale is not None:  # INT8
            buffer = model.buffers[tensor.buffer].data
            if buffer is not None and len(buffer):
                stored[tensor.name.decode()] = (np.frombuffer(bytes(buffer), np.int8).reshape(tensor.shape),
                                                np.asarray(tensor.quantization.scale))
    for layer, mode in (("conv2", "per_channel"), ("dense1", "per_tensor")):
        fq = np.asarray(_fake_quant_kernel(qat.get_layer(layer).kernel, mode))
        expected = np.moveaxis(fq, -1, 0)  # TFLite keeps output channels first
        (q, scale), = [v for k, v in stored.items() if layer in k and v[0].shape == expected.shape]
        scale = scale.reshape((-1,) + (1,) * (expected.ndim - 1)) if scale.size > 1 else scale
        np.testing.assert_array_equal(np.round(expected / scale).astype(np.int8), q)  # same integer, every weight
        np.testing.assert_allclose(q * scale, expected, rtol=0, atol=float(np.max(scale)) * 1e-3)


def _export_fully_int8(model, x, tmp_path):
    qat = qat_fit(model, x, np.zeros(len(x), dtype=int))
    entry = edgeopt.export_tflite(qat, ["int8"], output_dir=tmp_path, eval_data=x)["int8"]
    info = inspect_tflite(entry.path)
    return info, entry


def test_conv_bn_relu6_residual_and_dense_models_convert_fully_int8(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 8))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(max_value=6.0)(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    y = keras.layers.BatchNormalization()(y)
    x = keras.layers.Add()([x, y])  # residual, MobileNetV2 style
    x = keras.layers.GlobalAveragePooling2D()(x)
    residual = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    dense = keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    infos = {}
    for model, x in ((residual, rng.random((32, 16, 16, 8), dtype=np.float32)),
                     (dense, rng.standard_normal((32, 20)).astype(np.float32))):
        info, entry = _export_fully_int8(model, x, tmp_path / model.name)
        assert info.fully_integer and not info.float_ops, (model.name, info.op_counts)
        assert entry.validation["max_abs_error"] < 0.1 * (np.abs(model.predict(x, verbose=0)).max() + 1)
        infos[model.name] = info
    residual_ops = infos[residual.name].op_counts
    assert residual_ops.get("ADD") == 1 and residual_ops.get("DEPTHWISE_CONV_2D") == 1
    assert "CONV_2D+RELU6" in infos[residual.name].fused_activations


def test_save_load_round_trip(digits_qat, tmp_path, digits):
    qat, _, _ = digits_qat
    qat.save(tmp_path / "qat.keras")
    loaded = edgeopt.load_model(tmp_path / "qat.keras")
    np.testing.assert_allclose(loaded.predict(digits.x_test[:16], verbose=0), qat.predict(digits.x_test[:16], verbose=0),
                               atol=1e-6)
    plain = keras.models.load_model(tmp_path / "qat.keras")  # registered custom objects
    assert type(plain.get_layer("conv1")).__name__ == "FakeQuantConv2D"


def test_sparsity_survives_qat_and_export(digits, tmp_path):
    keras.utils.set_random_seed(0)
    model = edgeopt.models.digits_cnn(width=8)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(digits.x_train, digits.y_train, epochs=2, batch_size=64, verbose=0,
              callbacks=[Pruning(ConstantSparsity(0.6), frequency=5)])
    zeros = np.count_nonzero(model.get_layer("dense1").get_weights()[0] == 0)
    qat = qat_fit(model, digits.x_train, digits.y_train, callbacks=[KeepSparsity()])
    assert np.count_nonzero(qat.get_layer("dense1").get_weights()[0] == 0) == zeros
    entry = edgeopt.export_tflite(qat, ["int8"], output_dir=tmp_path)["int8"]
    kernel = qat.get_layer("dense1").get_weights()[0]
    exported = [t for t in constant_tensors(open(entry.path, "rb").read()).values()
                if t.dtype == np.int8 and t.ndim == 2 and t.size == kernel.size]
    assert np.count_nonzero(exported[0] == 0) >= zeros


def test_preserve_sparsity_without_a_callback(digits):
    keras.utils.set_random_seed(0)
    model = edgeopt.models.digits_cnn(width=8)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(digits.x_train, digits.y_train, epochs=1, batch_size=64, verbose=0,
              callbacks=[Pruning(ConstantSparsity(0.5), frequency=5)])
    zeros = model.get_layer("conv2").get_weights()[0] == 0
    qat = quantize_aware(model, preserve="sparsity")
    qat.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    qat.fit(digits.x_train, digits.y_train, epochs=1, batch_size=64, verbose=0)
    np.testing.assert_array_equal(qat.get_layer("conv2").get_weights()[0] == 0, zeros)
    with pytest.raises(ConfigError, match="Cluster-preserving QAT is offered for tf_keras"):
        quantize_aware(model, preserve="clusters")


def test_distill_into_a_qat_student(digits, keras3_model):
    keras.utils.set_random_seed(1)
    student = quantize_aware(edgeopt.models.digits_cnn(width=4))
    with pytest.warns(UserWarning):
        distiller = edgeopt.Distiller(student=student, teacher=keras3_model, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    history = distiller.fit(digits.x_train, digits.y_train, epochs=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_unsupported_layers_listed_or_left_float_and_the_export_says_so(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,))
    x = keras.layers.Dense(8, name="dense")(inputs)
    x = keras.layers.ELU(name="elu")(x)  # TFLite has no int8 ELU
    x = keras.layers.Dense(8, activation="selu", name="selu_dense")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    with pytest.raises(ConfigError, match=r"cannot quantize these layers: "
                       r"\[\('elu', 'ELU'\), \('selu_dense', 'Dense'\)\]"
                       r".*selu_dense: activation 'selu' has no int8 TFLite kernel.*skip=\['elu', 'selu_dense'\]"):
        quantize_aware(model)
    with pytest.raises(ConfigError, match=r"No such layers to skip. Received: skip=\['nope'\]"):
        quantize_aware(model, skip=["nope"])
    with pytest.warns(UserWarning, match=r"left in float: \['elu', 'selu_dense'\]"):
        qat = quantize_aware(model, skip=True)
    assert type(qat.get_layer("dense")).__name__ == "FakeQuantDense"
    assert type(qat.get_layer("elu")).__name__ == "ELU" and type(qat.get_layer("selu_dense")).__name__ == "Dense"
    x = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    qat.compile(optimizer="adam", loss="mse")
    qat.fit(x, x[:, :2], epochs=1, verbose=0)
    entry = edgeopt.export_tflite(qat, ["int8"], output_dir=tmp_path, eval_data=x)["int8"]
    # the float layers are named by their ops; everything around them is int8
    assert not entry.fully_integer and set(entry.float_ops) >= {"ELU"}, entry.float_ops
    assert entry.op_counts["FULLY_CONNECTED"] == 3 and entry.float_ops.get("FULLY_CONNECTED", 0) == 1
    assert entry.validation["max_abs_error"] < 0.05 * np.ptp(qat.predict(x, verbose=0))


def test_convnext_block_converts_fully_int8(tmp_path):
    """ConvNeXt's block: a grouped Conv2D with one group per channel, LayerNormalization on
    images, Dense on 4-D tensors with gelu, LayerScale, a residual Add."""
    from keras.src.applications.convnext import LayerScale

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 16))
    x = keras.layers.Conv2D(16, 7, padding="same", groups=16, name="depthwise_as_grouped")(inputs)
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    x = keras.layers.Dense(32, activation="gelu")(x)
    x = LayerScale(0.5, 16, name="scale")(keras.layers.Dense(16)(x))
    model = keras.Model(inputs, keras.layers.Add()([inputs, x]), name="convnext_block")
    x = np.random.default_rng(0).standard_normal((32, 8, 8, 16)).astype(np.float32)
    qat = quantize_aware(model)
    assert type(qat.get_layer("scale")).__name__ == "FakeQuantLayerScale"
    qat.compile(optimizer="adam", loss="mse")
    qat.fit(x, x, epochs=1, verbose=0)
    entry = edgeopt.export_tflite(qat, ["int8"], output_dir=tmp_path, eval_data=x)["int8"]
    assert entry.fully_integer, entry.float_ops
    assert entry.op_counts["DEPTHWISE_CONV_2D"] == 3  # the grouped conv, LayerNorm's gamma/beta, LayerScale
    assert entry.validation["max_abs_error"] <= 0.03 * np.ptp(qat.predict(x, verbose=0))


@pytest.mark.parametrize("kwargs, message", [
    ({"layers": "conv1"}, r"a list of layer names. Received: layers='conv1'. Pass a list: layers=\['conv1'\]"),
    ({"layer_types": ["Conv2d"]}, r"No layers of these types to quantize. Received: layer_types=\['Conv2d'\]"),
    ({"skip": [3]}, r"skip must be a list of layer names. Received: skip=\[3\]. Pass a list of strings or True"),
    ({"layers": ["conv9"]}, r"No such layers to quantize. Received: layers=\['conv9'\]"),
])
def test_bad_arguments_are_one_clear_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        quantize_aware(edgeopt.models.digits_cnn(width=4), **kwargs)


def test_other_backend_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ConfigError, match="TensorFlow backend.*KERAS_BACKEND='jax'"):
        quantize_aware(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


@given(st.lists(st.sampled_from("abcdefghij"), min_size=2, max_size=8, unique=True), st.data())
def test_einsum_equations_that_are_dense_layers_are_recognized(letters, data):
    cut1 = data.draw(st.integers(0, len(letters) - 2))
    cut2 = data.draw(st.integers(cut1 + 1, len(letters) - 1))
    batch, contracted, new = "".join(letters[:cut1]), "".join(letters[cut1:cut2]), "".join(letters[cut2:])
    assert _dense_equation(f"{batch}{contracted},{contracted}{new}->{batch}{new}") == (contracted, new)
    if len(new) > 1:  # an output that transposes is not a dense layer
        assert _dense_equation(f"{batch}{contracted},{contracted}{new}->{batch}{new[::-1]}") is None


@given(st.text(alphabet="abc,->.", max_size=12))
def test_any_einsum_string_is_answered_without_an_exception(equation):
    result = _dense_equation(equation)
    assert result is None or all(isinstance(part, str) and part for part in result)
