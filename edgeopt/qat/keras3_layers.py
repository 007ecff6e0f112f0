"""Keras 3 layers that compute with int8 fake-quantized weights, as TFLite will.

Each subclasses the built-in layer it replaces, so the weights, their order and the
config stay the same; the quantizers for the layer's activation and output live inside
the layer (`QuantizedOutput`), so a quantized layer keeps its name, also as a model
output.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from edgeopt.qat.keras3_quantizers import PACKAGE, QuantizedReplacement, channel_affine, fake_quant_kernel


def _bias_shape(layer, channels):
    if layer.data_format == "channels_last":
        return (1,) * (layer.rank + 1) + (channels,)
    return (1, channels) + (1,) * layer.rank


class _Weighted(QuantizedReplacement):
    """Shared by the weighted layers: fake-quantized kernels, then bias and activation."""

    KERNELS = ("kernel",)

    def _own_activation(self):
        return self.activation

    def kernel_variables(self) -> list:
        return [getattr(self, name) for name in self.KERNELS]

    def _finish(self, outputs, training):
        if getattr(self, "use_bias", True) and getattr(self, "bias", None) is not None:
            outputs = ops.add(outputs, self._reshaped_bias(outputs))
        return self._activate(outputs, self.activation, training)

    def _reshaped_bias(self, outputs):
        return ops.reshape(self.bias, _bias_shape(self, self.filters))


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantConv1D(_Weighted, keras.layers.Conv1D):
    """Conv1D as a 2-D convolution over one row, so TFLite keeps its per-channel int8 kernel.

    TensorFlow runs Conv1D by expanding the kernel to 4-D after the fake quant, which
    loses the per-channel axis and the int8 conversion fails; here the kernel is
    expanded first.
    """

    def call(self, inputs, training=None):
        padding = self.padding
        if padding == "causal":
            inputs = ops.pad(inputs, self._compute_causal_padding())
            padding = "valid"
        kernel = fake_quant_kernel(self.kernel[None], "per_channel")  # (1, width, in, out)
        outputs = tf.nn.conv2d(tf.expand_dims(inputs, 1), kernel, strides=(1, self.strides[0]),
                               padding=padding.upper(), dilations=(1, self.dilation_rate[0]))
        return self._finish(tf.squeeze(outputs, 1), training)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantConv2D(_Weighted, keras.layers.Conv2D):
    """Conv2D computing with per-output-channel fake-quantized int8 weights.

    A grouped convolution with one group per input channel (ConvNeXt's depthwise
    convolutions) is a depthwise convolution: it runs as one, DEPTHWISE_CONV_2D in TFLite.
    """

    def call(self, inputs, training=None):
        kernel = fake_quant_kernel(self.kernel, "per_channel")
        if self.groups == 1:
            return self._finish(self.convolution_op(inputs, kernel), training)
        shape = (*self.kernel_size, self.groups, self.filters // self.groups)  # (kh, kw, in, multiplier)
        outputs = ops.depthwise_conv(inputs, ops.reshape(kernel, shape), strides=self.strides, padding=self.padding,
                                     dilation_rate=self.dilation_rate, data_format=self.data_format)
        return self._finish(outputs, training)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantDepthwiseConv2D(_Weighted, keras.layers.DepthwiseConv2D):
    """DepthwiseConv2D computing with per-channel fake-quantized int8 weights."""

    def call(self, inputs, training=None):
        outputs = ops.depthwise_conv(inputs, fake_quant_kernel(self.kernel, "depthwise"), strides=self.strides,
                                     padding=self.padding, dilation_rate=self.dilation_rate,
                                     data_format=self.data_format)
        return self._finish(outputs, training)

    def _reshaped_bias(self, outputs):
        return ops.reshape(self.bias, _bias_shape(self, outputs.shape[-1]))


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantSeparableConv2D(_Weighted, keras.layers.SeparableConv2D):
    """SeparableConv2D as TFLite runs it: DEPTHWISE_CONV_2D, a range, then a 1x1 CONV_2D."""

    KERNELS = ("depthwise_kernel", "pointwise_kernel")
    EXTRA_RANGES = {"depthwise": None}

    def call(self, inputs, training=None):
        x = ops.depthwise_conv(inputs, fake_quant_kernel(self.depthwise_kernel, "depthwise"), strides=self.strides,
                               padding=self.padding, dilation_rate=self.dilation_rate, data_format=self.data_format)
        x = self._quantize("depthwise", x, training)
        x = ops.conv(x, fake_quant_kernel(self.pointwise_kernel, "per_channel"), strides=1, padding="valid",
                     data_format=self.data_format)
        return self._finish(x, training)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantConv2DTranspose(_Weighted, keras.layers.Conv2DTranspose):
    """Conv2DTranspose with a per-tensor int8 kernel (TRANSPOSE_CONV; per-channel does not convert)."""

    def call(self, inputs, training=None):
        outputs = ops.conv_transpose(inputs, fake_quant_kernel(self.kernel, "per_tensor"), self.strides,
                                     padding=self.padding, output_padding=self.output_padding,
                                     data_format=self.data_format, dilation_rate=self.dilation_rate)
        return self._finish(outputs, training)


def _matmul_bias(x, kernel, bias, out_shape, then=None):
    """`x @ kernel + bias` on 2-D tensors, reshaped to `out_shape`: one FULLY_CONNECTED (bias fused).

    `then` (the activation and its ranges) runs before the reshape, where the converter
    can fuse a ReLU into the FULLY_CONNECTED.
    """
    y = ops.matmul(ops.reshape(x, (-1, kernel.shape[0])), fake_quant_kernel(kernel, "per_tensor"))
    if bias is not None:
        y = ops.add(y, ops.reshape(bias, (-1,)))
    return ops.reshape(then(y) if then is not None else y, out_shape)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantDense(_Weighted, keras.layers.Dense):
    """Dense computing with per-tensor fake-quantized int8 weights.

    Inputs of rank > 2 are flattened to 2-D first: TensorFlow's batched matmul converts
    to a FULLY_CONNECTED whose bias add stays a separate op without a range.
    """

    def call(self, inputs, training=None):
        if len(inputs.shape) == 2:
            return self._finish(ops.matmul(inputs, fake_quant_kernel(self.kernel, "per_tensor")), training)
        shape = tf.concat([tf.shape(inputs)[:-1], [self.units]], axis=0)
        return _matmul_bias(inputs, self.kernel, self.bias, shape,
                            then=lambda y: self._activate(y, self.activation, training))

    def _reshaped_bias(self, outputs):
        return self.bias


def _dense_equation(equation: str):
    """`(contracted, new)` letters when an einsum is `batch + contracted, contracted + new -> batch + new`."""
    try:
        inputs, output = equation.split("->")
        x, kernel = inputs.split(",")
    except ValueError:
        return None
    contracted = "".join(c for c in x if c in kernel and c not in output)
    batch, new = x[:len(x) - len(contracted)], kernel[len(contracted):]
    if "." in equation or not contracted or not new:
        return None
    if (x, kernel, output) != (batch + contracted, contracted + new, batch + new):
        return None
    return contracted, new


def einsum_dense(layer, inputs, then=None):
    """An EinsumDense layer's `einsum + bias` with a per-tensor int8 kernel, then `then`.

    When the equation is a dense layer over the trailing axes (all of MultiHeadAttention's
    are), it runs as reshape, one FULLY_CONNECTED with its bias fused, reshape.
    """
    parts = _dense_equation(layer.equation)
    bias, kernel = layer.bias, layer.kernel
    if parts is None or (bias is not None and tuple(bias.shape) != tuple(kernel.shape[len(parts[0]):])):
        y = ops.einsum(layer.equation, inputs, fake_quant_kernel(kernel, "per_tensor"))
        y = ops.add(y, bias) if bias is not None else y
        return then(y) if then is not None else y
    contracted = parts[0]
    batch = tf.shape(inputs)[:len(inputs.shape) - len(contracted)]
    shape = tf.concat([batch, tf.constant([int(d) for d in kernel.shape[len(contracted):]], tf.int32)], axis=0)
    flat = ops.reshape(kernel, (int(np.prod(kernel.shape[:len(contracted)])), -1))
    return _matmul_bias(inputs, flat, bias, shape, then)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantEinsumDense(_Weighted, keras.layers.EinsumDense):
    """EinsumDense with a per-tensor int8 kernel (see `einsum_dense`)."""

    def call(self, inputs, training=None):
        return einsum_dense(self, inputs, then=lambda y: self._activate(y, self.activation, training))


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantEmbedding(keras.layers.Embedding):
    """Embedding with a per-tensor int8 table: TFLite's GATHER keeps the table's scale.

    Its integer input (token ids) is never quantized, and its output needs no range of
    its own.
    """

    KERNELS = ("embeddings",)

    def kernel_variables(self) -> list:
        return [self.embeddings]

    def range_variables(self) -> list:
        return []

    def call(self, inputs):
        if inputs.dtype not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        return ops.take(fake_quant_kernel(self.embeddings, "per_tensor"), inputs, axis=0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantBatchNormalization(QuantizedReplacement, keras.layers.BatchNormalization):
    """BatchNormalization, folded into the layer before it or standalone.

    Folded (after a convolution or Dense) it computes as usual: the converter folds it
    into that layer's kernel. Standalone (after a pooling, a concatenation, an input)
    TFLite runs it as `x * a + b`: here one depthwise 1x1 convolution, so it is one
    int8 op with exact per-channel scales.

    Args:
        standalone: not folded into the layer before it. Defaults to `False`.
        quantize_output: see `QuantizedOutput`. Defaults to `True`.
    """

    def __init__(self, *args, standalone: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.standalone = bool(standalone)

    def call(self, inputs, training=None, mask=None):
        if not self.standalone:
            return self._activate(super().call(inputs, training=training, mask=mask), None, training)
        if training and self.trainable:
            mean, variance = self._moments(inputs, mask)
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        scale = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            scale = scale * self.gamma
        offset = -mean * scale + (self.beta if self.center else 0.0)
        return self._activate(channel_affine(inputs, scale, offset), None, training)

    def get_config(self):
        return dict(super().get_config(), standalone=self.standalone)


try:  # ConvNeXt's per-channel scale; not a public layer, so only where this Keras has it
    from keras.src.applications.convnext import LayerScale as _LayerScale
except ImportError:  # pragma: no cover - another Keras version
    _LayerScale = None

if _LayerScale is not None:

    @keras.saving.register_keras_serializable(package=PACKAGE)
    class FakeQuantLayerScale(QuantizedReplacement, _LayerScale):
        """ConvNeXt's LayerScale (`x * gamma`) as one int8 depthwise 1x1 convolution."""

        def call(self, x, training=None):
            return self._activate(channel_affine(x, self.gamma, ops.zeros_like(self.gamma)), None, training)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantRescaling(QuantizedReplacement, keras.layers.Rescaling):
    """Rescaling as one int8 depthwise 1x1 convolution (`x * scale + offset`)."""

    def call(self, inputs, training=None):
        channels = inputs.shape[-1]
        scale = np.broadcast_to(np.asarray(self.scale, np.float32).reshape(-1), (channels,))
        offset = np.broadcast_to(np.asarray(self.offset, np.float32).reshape(-1), (channels,))
        x = channel_affine(ops.cast(inputs, self.compute_dtype), scale, offset)
        return self._activate(x, None, training)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantNormalization(QuantizedReplacement, keras.layers.Normalization):
    """Normalization over the last axis as one int8 depthwise 1x1 convolution."""

    def call(self, inputs, training=None):
        if self.input_mean is None:  # adapted: read the variables, not a snapshot of them
            mean, variance = self.adapt_mean, self.adapt_variance
        else:
            mean, variance = self.mean, self.variance
        mean, variance = ops.reshape(mean, (-1,)), ops.reshape(variance, (-1,))
        std = ops.maximum(ops.sqrt(variance), keras.backend.epsilon())
        if self.invert:
            x = channel_affine(inputs, std, mean)
        else:
            x = channel_affine(inputs, 1.0 / std, -mean / std)
        return self._activate(x, None, training)
