"""The transformer layers of edgeopt's Keras 3 QAT: LayerNormalization and MultiHeadAttention.

TFLite has no int8 kernel for either; the converter lowers them to MEAN, SUB, MUL,
RSQRT, FULLY_CONNECTED, BATCH_MATMUL and SOFTMAX, which all run in int8 when every
intermediate tensor has a range. These subclasses compute exactly that sequence with a
quantizer after each op, keeping the weights (and their order) of the layer they replace.
"""

from __future__ import annotations

import keras
from keras import ops
from keras.src.backend import get_keras_mask, set_keras_mask  # what MultiHeadAttention uses

from edgeopt.qat.keras3_quantizers import (FIXED_RANGES, PACKAGE, QuantizedOutput, QuantizedReplacement,
                                           channel_affine)
from edgeopt.qat.keras3_layers import einsum_dense


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantLayerNormalization(QuantizedReplacement, keras.layers.LayerNormalization):
    """LayerNormalization over the last axis as int8 ops: mean, centre, variance, rsqrt, scale.

    The final `* gamma + beta` is one depthwise 1x1 convolution (exact per-channel gamma).
    """

    STEPS = ("mean", "centred", "squared", "variance", "shifted", "rsqrt", "normalized")
    EXTRA_RANGES = dict.fromkeys(STEPS)

    def call(self, inputs, training=None):
        def q(step, x):
            return self._quantize(step, x, training)

        mean = q("mean", ops.mean(inputs, axis=-1, keepdims=True))
        centred = q("centred", ops.subtract(inputs, mean))
        variance = q("variance", ops.mean(q("squared", ops.multiply(centred, centred)), axis=-1, keepdims=True))
        inverse = q("rsqrt", ops.rsqrt(q("shifted", ops.add(variance, self.epsilon))))
        normalized = q("normalized", ops.multiply(centred, inverse))
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else ops.ones((channels,))
        beta = self.beta if self.center else ops.zeros((channels,))
        return self._activate(channel_affine(normalized, gamma, beta), None, training)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuantMultiHeadAttention(QuantizedOutput, keras.layers.MultiHeadAttention):
    """MultiHeadAttention with per-tensor int8 projections and a range after every op.

    Query, key and value projections, the `1/sqrt(key_dim)` scaling, the scores, the
    softmax (fixed range), the context and the output projection each get a range; the
    attention runs as two BATCH_MATMULs, never through the fused dot-product kernel.
    """

    STEPS = ("query", "key", "value", "scaled", "scores", "context")

    def __init__(self, *args, quantize_output: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        extra = dict(dict.fromkeys(self.STEPS), probs=FIXED_RANGES["softmax"])
        self._make_quantizers(None, quantize_output=quantize_output, extra=extra)

    def build(self, query_shape, value_shape, key_shape=None):
        super().build(query_shape, value_shape, key_shape)
        self._build_quantizers()

    def kernel_variables(self) -> list:
        return [d.kernel for d in (self._query_dense, self._key_dense, self._value_dense, self._output_dense)]

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
             return_attention_scores=False, training=None, use_causal_mask=False):
        key = value if key is None else key
        query_mask = get_keras_mask(query)
        for tensor in (query, value, key):
            set_keras_mask(tensor, None)
        attention_mask = self._compute_attention_mask(query, value, query_mask=query_mask, value_mask=value_mask,
                                                      key_mask=key_mask, attention_mask=attention_mask,
                                                      use_causal_mask=use_causal_mask)

        def ranged(point):
            return lambda y: self._quantize(point, y, training)

        query = einsum_dense(self._query_dense, query, then=ranged("query"))
        key = einsum_dense(self._key_dense, key, then=ranged("key"))
        value = einsum_dense(self._value_dense, value, then=ranged("value"))
        query = self._quantize("scaled", ops.multiply(query, self._inverse_sqrt_key_dim), training)
        scores = self._quantize("scores", ops.einsum(self._dot_product_equation, key, query), training)
        scores = self._quantize("probs", self._masked_softmax(scores, attention_mask), training)
        dropped = self._dropout_layer(scores, training=training) if self._dropout > 0.0 else scores
        context = self._quantize("context", ops.einsum(self._combine_equation, dropped, value), training)
        output = einsum_dense(self._output_dense, context, then=lambda y: self._activate(y, None, training))
        if query_mask is not None:
            set_keras_mask(output, query_mask)
        return (output, scores) if return_attention_scores else output
