"""Quantization-aware training for Keras 3 models (TensorFlow backend), written here.

No maintained tool does it: tfmot needs tf_keras, and Keras 3's own `quantize("int8")`
is weight-only and does not convert to an int8 TFLite model. The scheme follows what
the TFLite converter expects, as tfmot's default 8-bit scheme does:

* weights: symmetric int8, narrow range [-127, 127]; per output channel for Conv1D,
  Conv2D and DepthwiseConv2D kernels, per tensor for Dense kernels (a per-channel fake
  quant on a Dense kernel does not convert: "'tfl.transpose' op has mismatched
  quantized axes");
* activations: per-tensor asymmetric int8, ranges tracked by moving averages while
  training and frozen at inference; the model's input is quantized too;
* the converter's fused patterns are respected: no quantizer between a conv/dense, its
  BatchNormalization and its ReLU/ReLU6 — the quantizer follows the fused block; Add
  and Concatenate outputs get their own range; max-pooling, flatten and reshape pass
  ranges through; softmax has the converter's fixed output range.

TensorFlow's own `fake_quant_with_min_max_vars(_per_channel)` ops do the rounding
with straight-through gradients; they are what the converter reads as learned ranges.
Only the layers and the graph rewrite are hand-written.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import keras
import tensorflow as tf
from keras import ops

from edgeopt._layers import layer_type
from edgeopt.errors import ConfigError

_PACKAGE = "edgeopt"


def _fake_quant_kernel(kernel, mode: str):
    """Symmetric narrow-range int8 fake quantization of a kernel (straight-through)."""
    kernel = tf.convert_to_tensor(kernel)
    if mode == "per_tensor":
        bound = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(kernel)), 1e-8))
        return tf.quantization.fake_quant_with_min_max_vars(kernel, -bound, bound, num_bits=8, narrow_range=True)
    shape = tf.shape(kernel)
    if mode == "depthwise":  # (kh, kw, in, mult): TFLite's channels are in * mult
        kernel = tf.reshape(kernel, tf.concat([shape[:2], [1, -1]], axis=0))
    axes = list(range(len(kernel.shape) - 1))
    bound = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(kernel), axis=axes), 1e-8))
    quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(kernel, -bound, bound, num_bits=8,
                                                                          narrow_range=True)
    return tf.reshape(quantized, shape) if mode == "depthwise" else quantized


def _bias_shape(layer, channels):
    if layer.data_format == "channels_last":
        return (1,) * (layer.rank + 1) + (channels,)
    return (1, channels) + (1,) * layer.rank


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantConv2D(keras.layers.Conv2D):
    """Conv2D computing with per-output-channel fake-quantized int8 weights."""

    def call(self, inputs):
        outputs = self.convolution_op(inputs, _fake_quant_kernel(self.kernel, "per_channel"))
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(self.bias, _bias_shape(self, self.filters)))
        return self.activation(outputs) if self.activation is not None else outputs


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantConv1D(keras.layers.Conv1D):
    """Conv1D computing with per-output-channel fake-quantized int8 weights."""

    def call(self, inputs):
        if self.padding == "causal":
            inputs = ops.pad(inputs, self._compute_causal_padding())
        outputs = self.convolution_op(inputs, _fake_quant_kernel(self.kernel, "per_channel"))
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(self.bias, _bias_shape(self, self.filters)))
        return self.activation(outputs) if self.activation is not None else outputs


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """DepthwiseConv2D computing with per-channel fake-quantized int8 weights."""

    def call(self, inputs):
        outputs = ops.depthwise_conv(inputs, _fake_quant_kernel(self.kernel, "depthwise"), strides=self.strides,
                                     padding=self.padding, dilation_rate=self.dilation_rate,
                                     data_format=self.data_format)
        if self.use_bias:
            channels = self.depth_multiplier * self._get_input_channel(inputs.shape)
            outputs = ops.add(outputs, ops.reshape(self.bias, _bias_shape(self, channels)))
        return self.activation(outputs) if self.activation is not None else outputs


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantDense(keras.layers.Dense):
    """Dense computing with per-tensor fake-quantized int8 weights."""

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, _fake_quant_kernel(self.kernel, "per_tensor"))
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x) if self.activation is not None else x


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantActivation(keras.layers.Layer):
    """Per-tensor asymmetric int8 fake quantization of activations.

    While training, the range follows the batch minimum and maximum through a moving
    average (the first batch sets it); at inference it is frozen.

    Args:
        decay: moving-average decay. Defaults to `0.999`.
    """

    def __init__(self, decay: float = 0.999, **kwargs):
        super().__init__(**kwargs)
        self.decay = decay

    def build(self, input_shape):
        # [min, max]; both 0 until the first training batch sets them (one assign a step).
        self.range = self.add_weight(name="range", shape=(2,), initializer="zeros", trainable=False,
                                     autocast=False, aggregation="mean")

    def call(self, inputs, training=None):
        if training:
            batch = tf.stack([tf.minimum(tf.reduce_min(inputs), 0.0), tf.maximum(tf.reduce_max(inputs), 0.0)])
            current = self.range.value
            unseen = tf.cast(tf.reduce_all(tf.equal(current, 0.0)), inputs.dtype)
            decay = self.decay * (1.0 - unseen)
            self.range.assign(decay * current + (1.0 - decay) * tf.cast(batch, current.dtype))
        low, high = self.range.value[0], self.range.value[1]
        high = tf.maximum(high, low + 1e-6)
        return tf.quantization.fake_quant_with_min_max_vars(inputs, low, high, num_bits=8, narrow_range=False)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return dict(super().get_config(), decay=self.decay)


WEIGHTED = {"Conv1D": FakeQuantConv1D, "Conv2D": FakeQuantConv2D, "DepthwiseConv2D": FakeQuantDepthwiseConv2D,
            "Dense": FakeQuantDense}
FUSABLE = {"BatchNormalization"}  # joins the block of the conv/dense before it
PASS_THROUGH = {"MaxPooling1D", "MaxPooling2D", "Flatten", "Reshape", "Dropout", "ZeroPadding1D", "ZeroPadding2D",
                "InputLayer"}
RANGED = {"Add", "Concatenate", "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D",
          "GlobalAveragePooling2D", "ReLU", "Activation", "Softmax", "Multiply", "Subtract", "UpSampling2D"}
SUPPORTED = set(WEIGHTED) | FUSABLE | PASS_THROUGH | RANGED


def _kind(layer) -> str:
    return layer_type(layer, SUPPORTED)


def _activation_name(layer) -> str | None:
    if _kind(layer) == "ReLU":
        return "relu6" if getattr(layer, "max_value", None) == 6 else "relu"
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) if activation is not None else None


def _is_fusable_activation(layer) -> bool:
    return _kind(layer) in ("ReLU", "Activation") and _activation_name(layer) in ("relu", "relu6")


def _consumers(layer) -> list:
    return [node.operation for node in getattr(layer, "_outbound_nodes", [])]


def _needs_range(layer, outputs: set[str]) -> bool:
    """Does this layer's output get its own quantizer (the end of a fused block)?"""
    kind = _kind(layer)
    if kind in PASS_THROUGH and layer.name not in outputs:
        return False
    if kind == "Softmax" or _activation_name(layer) == "softmax":
        return False  # the converter fixes softmax's output range
    if kind == "Activation" and _activation_name(layer) == "linear":
        return False
    if kind in WEIGHTED or kind in FUSABLE:
        own = _activation_name(layer) if kind in WEIGHTED else None
        consumers = _consumers(layer)
        if own in (None, "linear") and consumers and layer.name not in outputs and all(
                _kind(c) in FUSABLE or _is_fusable_activation(c) for c in consumers):
            return False  # BN / ReLU follow: quantize after them
    return True


def _as_functional(model):
    if type(model).__name__ != "Sequential":
        return model
    inputs = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    x = inputs
    for layer in model.layers:
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def quantize_aware_keras3(model: Any, *, layers: Sequence[str] | None, layer_types: Sequence[str] | None,
                          skip: Sequence[str] | bool | None, preserve: str | None) -> Any:
    if preserve == "clusters":
        raise ConfigError("Cluster-preserving QAT is offered for tf_keras models (tfmot's CQAT) only. Received: "
                          "preserve='clusters' for a Keras 3 model. Drop it (shared values then drift during QAT), "
                          "or build the model with tf_keras.")
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(f"Keras 3 QAT needs the TensorFlow backend (the TFLite converter reads TF graphs). "
                          f"Received: KERAS_BACKEND={keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow.")
    if not getattr(model, "inputs", None) or type(model).__name__ not in ("Functional", "Sequential"):
        raise ConfigError(f"Keras 3 QAT needs a functional or Sequential model. Received: {type(model).__name__} "
                          f"{model.name!r}. Rebuild it with keras.Input and the functional API.")
    graph = _as_functional(model)
    inner = [l for l in graph.layers if _kind(l) != "InputLayer"]
    names = {l.name for l in inner}
    if layers is not None and set(layers) - names:
        raise ConfigError(f"No such layers to quantize. Received: layers={sorted(set(layers) - names)}. "
                          f"Layers in the model: {sorted(names)}.")
    unsupported = [(l.name, type(l).__name__) for l in inner if _kind(l) not in SUPPORTED]
    allowed = set(skip) if isinstance(skip, (list, tuple, set)) else set()
    refused = [(n, t) for n, t in unsupported if skip is not True and n not in allowed]
    if refused:
        raise ConfigError(
            f"Keras 3 QAT cannot quantize these layers: {refused}. Received: model {model.name!r}. "
            f"Pass skip={[n for n, _ in refused]} (or skip=True) to leave them in float, or replace them.")
    if unsupported:
        warnings.warn(f"quantize_aware: left in float: {[n for n, _ in unsupported]}", stacklevel=3)
    chosen = {l.name for l in inner if (layers is None or l.name in layers)
              and (layer_types is None or _kind(l) in layer_types) and _kind(l) in WEIGHTED}
    outputs = {t._keras_history.operation.name for t in graph.outputs}
    ranged = {l.name for l in inner if _needs_range(l, outputs)}
    input_quantizers: dict[int, Any] = {}

    # A conv/dense ending in softmax, sigmoid or tanh is split: the pre-activation gets
    # its range, the activation follows as its own layer (as the converter emits it).
    split = {l.name: _activation_name(l) for l in inner if _kind(l) in WEIGHTED
             and _activation_name(l) not in (None, "linear", "relu", "relu6")}

    def clone(layer):
        cls = WEIGHTED.get(_kind(layer)) if layer.name in chosen else None
        config = layer.get_config()
        if layer.name in split:
            config["activation"] = "linear"
        return (cls or layer.__class__).from_config(config)

    def call(layer, *args, **kwargs):
        args = [_quantize_input(a, input_quantizers) for a in args]
        out = layer(*args, **kwargs)
        if layer.name in split:
            out = FakeQuantActivation(name=f"{layer.name}_quant")(out)
            out = keras.layers.Activation(split[layer.name], name=f"{layer.name}_{split[layer.name]}")(out)
            if split[layer.name] != "softmax":
                out = FakeQuantActivation(name=f"{layer.name}_{split[layer.name]}_quant")(out)
        elif layer.name in ranged:
            out = FakeQuantActivation(name=f"{layer.name}_quant")(out)
        return out

    qat = keras.models.clone_model(graph, clone_function=clone, call_function=call)
    for layer in graph.layers:  # same weights, new layer objects
        if layer.weights:
            qat.get_layer(layer.name).set_weights(layer.get_weights())
    if preserve == "sparsity":
        for name in chosen:
            kernel = qat.get_layer(name).kernel
            mask = kernel.numpy() != 0
            if not mask.all():  # applied by the optimizer after every update
                kernel.constraint = _KeepZeros(mask)
    return qat


class _KeepZeros:
    """Variable constraint for `preserve="sparsity"`: pruned weights stay exactly zero."""

    def __init__(self, mask):
        self.mask = tf.constant(mask, dtype=tf.float32)

    def __call__(self, weight):
        return weight * tf.cast(self.mask, weight.dtype)


def _quantize_input(value, cache: dict):
    def one(tensor):
        history = getattr(tensor, "_keras_history", None)
        if history is None or type(history.operation).__name__ != "InputLayer":
            return tensor
        if id(tensor) not in cache:
            cache[id(tensor)] = FakeQuantActivation(name=f"{history.operation.name}_quant")(tensor)
        return cache[id(tensor)]

    if isinstance(value, (list, tuple)):
        return type(value)(one(v) for v in value)
    return one(value)
