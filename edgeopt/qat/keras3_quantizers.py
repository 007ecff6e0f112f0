"""The fake-quantization pieces of edgeopt's Keras 3 QAT: weights, activation ranges, nonlinearities.

Everything follows what the TFLite converter reads from a quantization-aware graph:

* weights: symmetric int8, narrow range [-127, 127], per output channel for
  convolutions (depthwise: per `in * multiplier` channel, as TFLite stores it), per
  tensor where the converter transposes or reshapes the kernel (Dense, EinsumDense,
  Conv2DTranspose, Embedding: a per-channel fake quant there fails with "mismatched
  quantized axes");
* activations: per-tensor asymmetric int8, ranges tracked by moving averages while
  training and frozen at inference (`FakeQuantActivation`);
* fixed output ranges where TFLite's int8 kernels fix them: LOGISTIC and SOFTMAX
  output scale 1/256 with zero point -128, TANH 1/128 with zero point 0;
* every op TFLite runs separately gets its own range: swish is LOGISTIC then MUL,
  hard-sigmoid is ADD(+RELU6) then MUL, so both get a range in the middle.

TensorFlow's own `fake_quant_with_min_max_vars(_per_channel)` ops do the rounding with
straight-through gradients; they are what the converter reads as learned ranges.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

PACKAGE = "edgeopt"

# Output ranges TFLite's int8 kernels fix (the converter ignores a learned one).
FIXED_RANGES = {"sigmoid": (0.0, 255.0 / 256.0), "softmax": (0.0, 255.0 / 256.0), "tanh": (-1.0, 127.0 / 128.0)}
LINEAR = (None, "linear")
FUSED = ("relu", "relu6")  # fused into the op before them: no range on their input
SINGLE_OP = ("gelu", "hard_silu", "leaky_relu", "exponential")  # one int8 TFLite op each
DECOMPOSED = ("silu", "hard_sigmoid")  # two int8 ops: a range between them
ACTIVATIONS = LINEAR + FUSED + SINGLE_OP + DECOMPOSED + tuple(FIXED_RANGES)
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}


def activation_name(activation) -> str | None:
    """The canonical name of a Keras activation (function or string), e.g. `"silu"` for swish."""
    if activation is None:
        return None
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", None)
    return _ALIASES.get(name, name)


def fake_quant_kernel(kernel, mode: str):
    """Symmetric narrow-range int8 fake quantization of a kernel (straight-through).

    Args:
        kernel: the weight tensor.
        mode: `"per_tensor"`, `"per_channel"` (last axis) or `"depthwise"`
            (`(kh, kw, in, multiplier)`, channels `in * multiplier`).
    """
    kernel = tf.convert_to_tensor(kernel)
    if mode == "per_tensor":
        bound = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(kernel)), 1e-8))
        return tf.quantization.fake_quant_with_min_max_vars(kernel, -bound, bound, num_bits=8, narrow_range=True)
    shape = tf.shape(kernel)
    if mode == "depthwise":
        kernel = tf.reshape(kernel, tf.concat([shape[:2], [1, -1]], axis=0))
    axes = list(range(len(kernel.shape) - 1))
    bound = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(kernel), axis=axes), 1e-8))
    quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(kernel, -bound, bound, num_bits=8,
                                                                          narrow_range=True)
    return tf.reshape(quantized, shape) if mode == "depthwise" else quantized


def fake_quant_activation(inputs, value_range, training, decay: float = 0.999):
    """Per-tensor asymmetric int8 fake quantization with a learned or a fixed range.

    Args:
        inputs: the activation tensor.
        value_range: a `(min, max)` pair (fixed), or a `[min, max]` variable that, while
            training, follows the batch minimum and maximum through a moving average
            (the first batch sets it, one assign a step); frozen at inference.
        training: whether this is a training step.
        decay: moving-average decay. Defaults to `0.999`.
    """
    if isinstance(value_range, tuple):
        low, high = value_range
        return tf.quantization.fake_quant_with_min_max_vars(inputs, low, high, num_bits=8, narrow_range=False)
    if training:
        batch = tf.stack([tf.minimum(tf.reduce_min(inputs), 0.0), tf.maximum(tf.reduce_max(inputs), 0.0)])
        current = value_range.value
        unseen = tf.cast(tf.reduce_all(tf.equal(current, 0.0)), inputs.dtype)
        rate = decay * (1.0 - unseen)
        value_range.assign(rate * current + (1.0 - rate) * tf.cast(batch, current.dtype))
    low, high = value_range.value[0], value_range.value[1]
    high = tf.maximum(high, low + 1e-6)
    return tf.quantization.fake_quant_with_min_max_vars(inputs, low, high, num_bits=8, narrow_range=False)


def _range_weight(layer, name: str):
    # [min, max]; both 0 until the first training batch sets them.
    return layer.add_weight(name=name, shape=(2,), initializer="zeros", trainable=False, autocast=False,
                            aggregation="mean")


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantActivation(keras.layers.Layer):
    """Per-tensor asymmetric int8 fake quantization of activations (see `fake_quant_activation`).

    Args:
        decay: moving-average decay of the learned range. Defaults to `0.999`.
        fixed_range: `(min, max)` instead of a learned range. Defaults to `None`.
    """

    def __init__(self, decay: float = 0.999, fixed_range: tuple[float, float] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.decay = decay
        self.fixed_range = tuple(fixed_range) if fixed_range is not None else None

    def build(self, input_shape=None):
        if self.fixed_range is None:
            self.range = _range_weight(self, "range")
        self.built = True

    def call(self, inputs, training=None):
        return fake_quant_activation(inputs, self.fixed_range or self.range, training, self.decay)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return dict(super().get_config(), decay=self.decay, fixed_range=self.fixed_range)


class QuantizedOutput:
    """Mixin: the ranges inside a layer, around its own activation and after its output.

    Each range is a point: `pre` (the input of an activation TFLite runs as its own op),
    `mid` (the middle of a decomposed one), `out` (the output; fixed for sigmoid, tanh
    and softmax) and any layer-specific ones. A learned point is a `<point>_range`
    weight of the layer itself, not a sublayer: tracing and saving a model cost per
    layer object. `quantize_output=False` leaves the output raw for a BatchNormalization
    or ReLU that the converter fuses into this layer.
    """

    def _make_quantizers(self, activation, *, quantize_output: bool, pre: bool = True, extra: dict | None = None):
        name = activation_name(activation)
        self.quantize_output = bool(quantize_output)
        own_op = name not in LINEAR + FUSED
        points: dict[str, tuple | None] = dict(extra or {})
        if pre and own_op:
            points["pre"] = None
        if name in DECOMPOSED:
            points["mid"] = FIXED_RANGES["sigmoid"] if name == "silu" else None
        if name in FIXED_RANGES:
            points["out"] = FIXED_RANGES[name]
        elif quantize_output or own_op:
            points["out"] = None
        self._points = points

    def _build_quantizers(self):
        for point, fixed in self._points.items():
            if fixed is None and getattr(self, f"{point}_range", None) is None:
                setattr(self, f"{point}_range", _range_weight(self, f"{point}_range"))

    def range_variables(self) -> list:
        """The learned ranges of this layer (not weights of the layer it replaces)."""
        return [getattr(self, f"{p}_range") for p, fixed in self._points.items() if fixed is None]

    def _quantize(self, point: str, x, training):
        if point not in self._points:
            return x
        fixed = self._points[point]
        return fake_quant_activation(x, fixed if fixed is not None else getattr(self, f"{point}_range"), training)

    def _activate(self, x, activation, training):
        """Applies `activation` the way TFLite runs it, with the ranges in between."""
        name = activation_name(activation)
        if name not in LINEAR + FUSED:
            x = self._quantize("pre", x, training)
            if name == "silu":
                x = ops.multiply(x, self._quantize("mid", ops.sigmoid(x), training))
            elif name == "hard_sigmoid":
                x = ops.multiply(self._quantize("mid", ops.relu6(ops.add(x, 3.0)), training), 1.0 / 6.0)
            else:
                x = keras.activations.get(name)(x)
        elif name in FUSED:
            x = keras.activations.get(name)(x)
        return self._quantize("out", x, training)

    def save_own_variables(self, store):
        # Dense and EinsumDense save only their own kernel and bias: the ranges follow them.
        super().save_own_variables(store)
        count = len(store.keys())
        if count < len(self._trainable_variables + self._non_trainable_variables):
            for i, variable in enumerate(self.range_variables()):
                store[str(count + i)] = variable

    def load_own_variables(self, store):
        super().load_own_variables(store)
        ranges = self.range_variables()
        first = len(store.keys()) - len(ranges)  # the ranges are the last entries either way
        for i, variable in enumerate(ranges):
            variable.assign(store[str(first + i)])

    def get_config(self):
        return dict(super().get_config(), quantize_output=self.quantize_output)


class QuantizedReplacement(QuantizedOutput):
    """Mixin of a built-in layer's replacement: `quantize_output` in its constructor,
    its ranges built with it. A subclass names the activation it applies itself
    (`_own_activation`) and any layer-specific range points (`EXTRA_RANGES`)."""

    EXTRA_RANGES: dict = {}

    def __init__(self, *args, quantize_output: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._make_quantizers(self._own_activation(), quantize_output=quantize_output, extra=self.EXTRA_RANGES)

    def _own_activation(self):
        return None

    def build(self, input_shape):
        super().build(input_shape)
        self._build_quantizers()


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantActivationFunction(QuantizedOutput, keras.layers.Layer):
    """An activation (layer or bare op) as TFLite runs it in int8, with its output range.

    Args:
        activation: the activation's name, e.g. `"silu"` or `"hard_sigmoid"`.
        quantize_output: give the output its own range. Defaults to `True`.
    """

    def __init__(self, activation: str, quantize_output: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation_name(activation)
        self._make_quantizers(self.activation, quantize_output=quantize_output, pre=False)

    def build(self, input_shape=None):
        self._build_quantizers()
        self.built = True

    def call(self, inputs, training=None):
        return self._activate(inputs, self.activation, training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return dict(super().get_config(), activation=self.activation)


def channel_affine(x, scale, offset):
    """`x * scale + offset` over the last axis as one depthwise 1x1 convolution.

    TFLite runs it as a single int8 DEPTHWISE_CONV_2D: the per-channel int8 kernel holds
    each channel's scale exactly and the int32 bias the offset (a MUL then an ADD
    would quantize all scales with one step and need a range in between).
    """
    channels = x.shape[-1]
    shape = tf.shape(x)
    rank = len(x.shape)
    if rank != 4:
        x = tf.reshape(x, tf.stack([shape[0], 1, -1, channels]))
    kernel = fake_quant_kernel(tf.reshape(scale, (1, 1, 1, channels)), "per_channel")
    y = tf.nn.depthwise_conv2d(x, tf.reshape(kernel, (1, 1, channels, 1)), [1, 1, 1, 1], "VALID")
    y = y + tf.reshape(offset, (channels,))
    return tf.reshape(y, shape) if rank != 4 else y
