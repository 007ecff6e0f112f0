"""Keras 3 QAT on the architectures people ship: each model trains, exports fully int8, and agrees.

Every architecture is built once (random weights, small input), made quantization-aware,
trained one step and exported with `edgeopt.export_tflite`; the tests then check the
.tflite file (all ops int8), the numerics (LiteRT int8 output against the QAT model's
own float output) and what each architecture brings (hard-swish ops, Rescaling and
Normalization, Conv1D, AVERAGE_POOL_2D scales, attention on token ids, named outputs).

A random network is either constant at its output (BatchNormalization's initial
statistics) or chaotic (calibrated statistics: one input level changes MobileNetV2's
features by a third of their range). Each model is therefore calibrated once and its
BatchNormalization scales halved, which makes it contractive like a trained network, so
the int8-vs-QAT agreement measures the conversion and not the chaos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import pytest
from keras import layers, ops

import edgeopt
from edgeopt.convert import engines
from edgeopt.convert.inspect import inspect_tflite, parse_model
from edgeopt.convert.interpreter import dequantize, make_interpreter, quantize
from edgeopt.convert.precision import Precision

pytestmark = pytest.mark.slow
SAMPLES = 32
A = keras.applications


def residual_net():
    """ResNet50's building blocks at toy width: 7x7 stem, max-pool, bottleneck blocks, Add + ReLU."""
    inputs = keras.Input((32, 32, 3))
    x = layers.ZeroPadding2D(3)(inputs)
    x = layers.Conv2D(8, 7, strides=2)(x)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    x = layers.MaxPooling2D(3, strides=2, padding="same")(layers.ZeroPadding2D(1)(x))
    for filters, shortcut in ((16, True), (16, False)):
        s = layers.BatchNormalization()(layers.Conv2D(filters, 1)(x)) if shortcut else x
        y = layers.Activation("relu")(layers.BatchNormalization()(layers.Conv2D(4, 1)(x)))
        y = layers.Activation("relu")(layers.BatchNormalization()(layers.Conv2D(4, 3, padding="same")(y)))
        y = layers.BatchNormalization()(layers.Conv2D(filters, 1)(y))
        x = layers.Activation("relu")(layers.Add()([s, y]))
    return keras.Model(inputs, layers.Dense(10)(layers.GlobalAveragePooling2D()(x)), name="resnet_small")


def dense_net():
    """A DenseNet dense block and transition: BN-ReLU-conv, Concatenate, AveragePooling2D."""
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    for i in range(3):
        y = layers.BatchNormalization(name=f"block{i}_bn")(x)  # after a concatenation: standalone
        y = layers.Conv2D(8, 1, use_bias=False)(layers.Activation("relu")(y))
        y = layers.Conv2D(4, 3, padding="same", use_bias=False)(layers.ReLU()(layers.BatchNormalization()(y)))
        x = layers.Concatenate()([x, y])
    x = layers.Conv2D(8, 1, use_bias=False)(layers.Activation("relu")(layers.BatchNormalization()(x)))
    x = layers.AveragePooling2D(2, strides=2, name="transition_pool")(x)
    return keras.Model(inputs, layers.Dense(5)(layers.GlobalAveragePooling2D()(x)), name="dense_small")


def keyword_spotting():
    """Conv1D over 49 MFCC frames: same, causal + dilated and strided convolutions."""
    inputs = keras.Input((49, 10))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv1D(16, 5, padding="same", use_bias=False)(inputs)))
    x = layers.Conv1D(16, 3, padding="causal", dilation_rate=2, activation="relu", name="causal")(x)
    x = layers.ReLU()(layers.Conv1D(16, 3, strides=2)(layers.MaxPooling1D(2)(x)))
    return keras.Model(inputs, layers.Dense(12)(layers.GlobalAveragePooling1D()(x)), name="kws_conv1d")


def separable_net():
    inputs = keras.Input((32, 32, 3))
    x = layers.SeparableConv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.SeparableConv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    return keras.Model(inputs, layers.Dense(4)(layers.GlobalAveragePooling2D()(x)), name="separable")


def unet():
    inputs = keras.Input((32, 32, 3))
    c1 = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    c2 = layers.Conv2D(16, 3, padding="same", activation="relu")(layers.MaxPooling2D()(c1))
    b = layers.Conv2D(16, 3, padding="same", activation="relu")(layers.MaxPooling2D()(c2))
    u2 = layers.Conv2DTranspose(16, 2, strides=2, padding="same")(b)
    c3 = layers.Conv2D(16, 3, padding="same", activation="relu")(layers.Concatenate()([u2, c2]))
    u1 = layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(c3)
    c4 = layers.Conv2D(8, 3, padding="same", activation="relu")(layers.Concatenate()([u1, c1]))
    return keras.Model(inputs, layers.Conv2D(1, 1, activation="sigmoid", name="mask")(c4), name="unet")


def transformer():
    """A transformer encoder on int32 token ids: token + position Embedding, attention, FFN."""
    tokens = keras.Input((16,), dtype="int32", name="tokens")
    positions = ops.cumsum(ops.ones_like(tokens), axis=1) - 1  # integer bare ops: never quantized
    x = layers.Add()([layers.Embedding(50, 32)(tokens), layers.Embedding(16, 32)(positions)])
    x = layers.LayerNormalization()(layers.Add()([x, layers.MultiHeadAttention(2, 16, name="attention")(x, x)]))
    f = layers.Dense(32)(layers.Dense(64, activation="gelu")(x))
    x = layers.LayerNormalization()(layers.Add()([x, f]))
    return keras.Model(tokens, layers.Dense(3)(layers.GlobalAveragePooling1D()(x)), name="transformer")


@dataclass
class Case:
    build: Callable[[], keras.Model]
    sample: Callable[[np.random.Generator], np.ndarray]
    max_error: float  # max |int8 - QAT| as a fraction of the QAT output's range
    mean_error: float  # mean |int8 - QAT|, same unit
    min_top1: float = 0.0  # random logits are near ties: only the shallow nets keep their top-1
    eager: bool = True  # tracing a train step of a deep net costs more than the export; small nets trace


def _efficientnet_small():
    from keras.src.applications.efficientnet import EfficientNet

    return EfficientNet(0.5, 0.25, 32, input_shape=(32, 32, 3), weights=None, classes=10,
                        classifier_activation=None, name="efficientnet_small")


def _images(scale=1.0, shape=(32, 32, 3)):
    return lambda rng: (rng.random((SAMPLES, *shape)) * scale).astype(np.float32)


# Measured (max, mean) |int8 - QAT| / range: MobileNetV2 2.6%, 0.7%; MobileNetV3Small 17%, 3.9%
# (hard-swish and squeeze-excite blocks, a 1024-wide head summing their rounding);
# EfficientNetB0 7.7%, 1.5%; the small nets at most 2.5%, 0.5%; single ops agree within a
# step or two. The bounds leave about twice that.
CASES = {
    "mobilenetv2": Case(lambda: A.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10,
                                              classifier_activation=None), _images(), 0.06, 0.02),
    "mobilenetv3small": Case(lambda: A.MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75, minimalistic=False,
                                                        weights=None, classes=10, classifier_activation=None),
                             _images(255.0), 0.3, 0.08),
    # EfficientNetB0's own constructor at half width, one block per stage (the full B0 adds
    # only depth, and a minute of export here): Rescaling, Normalization, swish, SE blocks.
    "efficientnetb0": Case(lambda: _efficientnet_small(), _images(255.0), 0.2, 0.04),
    "resnet_small": Case(residual_net, _images(), 0.03, 0.01, min_top1=0.9),
    "dense_small": Case(dense_net, _images(), 0.05, 0.01, min_top1=0.9),
    "kws_conv1d": Case(keyword_spotting, _images(shape=(49, 10)), 0.03, 0.01, min_top1=0.9, eager=False),
    "separable": Case(separable_net, _images(), 0.03, 0.01, min_top1=0.9, eager=False),
    "unet": Case(unet, _images(), 0.05, 0.01, eager=False),
    "transformer": Case(transformer, lambda rng: rng.integers(0, 50, (SAMPLES, 16)).astype(np.int32), 0.03, 0.01,
                        min_top1=0.9, eager=False),
}


def calibrate(model, x):
    """BatchNormalization statistics of `x`, scales halved (see the module docstring)."""
    norms = [l for l in model.layers if isinstance(l, layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    if norms:
        model(x, training=True)
    for layer in norms:
        layer.momentum = 0.99
        layer.gamma.assign(layer.gamma * 0.5)


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, tmp_path_factory):
    case = CASES[request.param]
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = case.build()
    x = case.sample(rng)
    calibrate(model, x)
    qat = edgeopt.quantize_aware(model)
    qat.compile(optimizer=keras.optimizers.Adam(1e-5), loss="mse", run_eagerly=case.eager)
    y = rng.standard_normal((16, *model.outputs[0].shape[1:])).astype(np.float32)
    history = qat.fit(x[:16], y, batch_size=16, epochs=1, verbose=0)
    entry = edgeopt.export_tflite(qat, ["int8"], output_dir=tmp_path_factory.mktemp(request.param), eval_data=x)["int8"]
    return request.param, model, qat, entry, x, history


def test_exports_fully_int8(exported):
    name, model, qat, entry, x, history = exported
    assert np.isfinite(history.history["loss"][0])
    info = inspect_tflite(entry.path)
    assert entry.fully_integer and info.fully_integer and info.float_ops == {}, (name, info.float_ops)
    expected_input = "int32" if name == "transformer" else "int8"  # token ids stay integers
    assert [t.dtype for t in info.inputs] == [expected_input] and info.outputs[0].dtype == "int8"
    assert qat.output_names == model.output_names


def test_int8_agrees_with_the_qat_model(exported):
    name, model, qat, entry, x, _ = exported
    reference = qat.predict(x, verbose=0)
    spread = float(np.ptp(reference))
    assert spread > 1e-3, f"{name}: the test model's output is constant"
    error = entry.validation["max_abs_error"] / spread
    print(f"{name}: max |int8 - QAT| = {error:.2%} of the output range, top-1 "
          f"{entry.validation['top1_agreement']}, mean {entry.validation['mean_abs_error'] / spread:.3%}")
    assert error <= CASES[name].max_error
    assert entry.validation["mean_abs_error"] / spread <= CASES[name].mean_error
    assert (entry.validation["top1_agreement"] or 0.0) >= CASES[name].min_top1


def _op_scales(path, op_name):
    """`(input scales, output scales, second input's scales)` of every `op_name` op in a .tflite file."""
    from ai_edge_litert.schema_py_generated import BuiltinOperator

    model = parse_model(open(path, "rb").read())
    graph = model.subgraphs[0]
    wanted = getattr(BuiltinOperator, op_name)
    found = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == wanted:
            tensors = [op.inputs[0], op.outputs[0], op.inputs[1] if len(op.inputs) > 1 else op.inputs[0]]
            found.append(tuple(list(graph.tensors[t].quantization.scale) for t in tensors))
    return found


def test_what_each_architecture_brings(exported):
    name, model, qat, entry, _, _ = exported
    kinds = {type(l).__name__ for l in qat.layers}
    ops_ = entry.op_counts
    if name == "mobilenetv3small":  # hard-sigmoid's bare `x + 3` and `* 1/6` and hard-swish, all int8
        assert ops_["HARD_SWISH"] > 0 and ops_["ADD"] > 0 and ops_["MUL"] > 0
        assert "FakeQuantRescaling" in kinds
    if name == "efficientnetb0":  # Rescaling and Normalization as one depthwise op each; swish = LOGISTIC, MUL
        assert {"FakeQuantRescaling", "FakeQuantNormalization"} <= kinds
        assert ops_["LOGISTIC"] == ops_["MUL"] > 0
    if name == "dense_small":  # AVERAGE_POOL_2D's int8 kernel needs its input's scale on its output
        ((scale_in, scale_out, _),) = _op_scales(entry.path, "AVERAGE_POOL_2D")
        assert scale_in == scale_out
        assert all(qat.get_layer(f"block{i}_bn").standalone for i in range(3))
        assert ops_["DEPTHWISE_CONV_2D"] == 4  # the standalone BatchNormalizations, one int8 op each
    if name == "kws_conv1d":  # per-channel int8 kernels survive (TensorFlow's Conv1D loses the axis)
        convs = _op_scales(entry.path, "CONV_2D")
        assert len(convs) == 3 and all(len(kernel) == 16 for _, _, kernel in convs)
    if name == "separable":
        assert ops_["DEPTHWISE_CONV_2D"] == 2 and ops_["CONV_2D"] == 2
    if name == "unet":
        assert ops_["TRANSPOSE_CONV"] == 2
    if name == "transformer":
        assert ops_["GATHER"] == 2 and ops_["BATCH_MATMUL"] == 2 and ops_["SOFTMAX"] == 1 and ops_["RSQRT"] == 2
        assert {"FakeQuantEmbedding", "FakeQuantMultiHeadAttention", "FakeQuantLayerNormalization"} <= kinds


def two_headed():
    features = keras.Input((16,), name="features")
    image = keras.Input((8, 8, 1), name="image")
    x = layers.Dense(16, activation="relu")(features)
    y = layers.Dense(16, activation="relu")(layers.Flatten()(layers.Conv2D(4, 3, activation="relu")(image)))
    z = layers.Concatenate()([x, y])
    outputs = [layers.Dense(3, name="class_logits")(z), layers.Dense(1, activation="sigmoid", name="score")(z)]
    return keras.Model([features, image], outputs, name="two_headed")


def test_two_inputs_two_named_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = two_headed()
    qat = edgeopt.quantize_aware(model)
    assert qat.output_names == ["class_logits", "score"]  # a loss dict keyed by output name still works
    qat.compile(optimizer="adam", loss={"class_logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                                        "score": "binary_crossentropy"})
    x = [rng.standard_normal((SAMPLES, 16)).astype(np.float32), rng.random((SAMPLES, 8, 8, 1)).astype(np.float32)]
    qat.fit(x, {"class_logits": rng.integers(0, 3, SAMPLES), "score": rng.random((SAMPLES, 1))}, epochs=1, verbose=0)
    # export_tflite validates single-input models; this one goes through the same converter call
    qat.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    data, settings = engines.convert_saved_model(str(tmp_path / "saved"), Precision.INT8, learned_ranges=True)
    info = inspect_tflite(data)
    assert info.fully_integer and info.integer_io and len(info.inputs) == 2 and len(info.outputs) == 2
    runner = make_interpreter(data).get_signature_runner()
    details_in, details_out = runner.get_input_details(), runner.get_output_details()
    out = runner(features=quantize(x[0], details_in["features"]), image=quantize(x[1], details_in["image"]))
    logits, score = qat.predict(x, verbose=0)
    got = sorted((dequantize(v, details_out[k]) for k, v in out.items()), key=lambda a: -a.shape[-1])
    for int8, reference in zip(got, (logits, score)):
        assert np.abs(int8 - reference).max() <= 0.02 * np.ptp(reference) + 1e-6
