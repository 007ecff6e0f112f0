"""The layer and op types channel pruning knows, by what they do to the channels.

Elementwise math written as ops (`x + 3.0`, `x * gate`, `relu6(x)`) is recorded by
Keras 3 as `keras.src.ops` operations and by tf_keras as `TFOpLambda` layers. The ones
listed here act on each value alone, so channels pass through them (several tensor
operands are tied together like an `Add` layer), provided every other operand is a
scalar. Anything else stays a barrier.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PRODUCERS = frozenset({"Dense", "Conv1D", "Conv2D", "Conv3D"})
SEPARABLE = frozenset({"SeparableConv1D", "SeparableConv2D"})
DEPTHWISE = frozenset({"DepthwiseConv1D", "DepthwiseConv2D"})
MERGES = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})
POOLING = frozenset(f"{p}Pooling{d}D" for p in ("Max", "Average", "GlobalMax", "GlobalAverage") for d in (1, 2, 3)) \
    | frozenset(f"{p}{d}D" for p in ("ZeroPadding", "Cropping", "UpSampling") for d in (1, 2, 3))
PASSTHROUGH = frozenset({"ReLU", "ELU", "LeakyReLU", "ThresholdedReLU", "Activation", "Dropout", "SpatialDropout1D",
                         "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                         "ActivityRegularization", "Identity"})
# Activations that act on each value alone (softmax and friends mix the channels).
ELEMENTWISE = frozenset({"linear", "relu", "relu6", "sigmoid", "tanh", "swish", "silu", "gelu", "elu", "selu",
                         "softplus", "softsign", "hard_sigmoid", "hard_silu", "hard_swish", "exponential",
                         "leaky_relu", "mish", "log_sigmoid", "celu", "hard_tanh", "tanh_shrink", "soft_shrink",
                         "hard_shrink", "sparse_plus", "squareplus", None})
MIXING_ACTIVATIONS = frozenset({"softmax", "log_softmax", "glu", "sparsemax"})
# Built-in layers that mix the channels they read (their inputs' groups are frozen, without a warning).
MIXING = frozenset({"Softmax", "LayerNormalization", "UnitNormalization", "GroupNormalization"})


class Mixing(str):
    """A barrier reason for a layer that is understood but mixes channels (softmax, ...): no warning."""


def builtin_kind(layer: Any) -> str | None:
    """The class name of a built-in Keras 3 / tf_keras layer; `None` for custom layers and ops."""
    cls = type(layer)
    if cls.__module__.split(".", 1)[0] not in ("keras", "tf_keras"):
        return None
    if not any(c.__name__ == "Layer" for c in cls.__mro__) or any(c.__name__ == "Model" for c in cls.__mro__):
        return None
    return cls.__name__


KERAS3_OPS = frozenset({
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Negative", "Abs", "Square",
    "Sqrt", "Exp", "Clip", "Relu", "Relu6", "Sigmoid", "HardSigmoid", "Silu", "Swish", "HardSilu", "HardSwish",
    "Tanh", "Gelu", "Elu", "Selu", "Softplus", "Softsign", "LeakyRelu", "Mish"})
TF_FUNCTIONS = frozenset({
    "__operators__.add", "math.add", "math.subtract", "math.multiply", "math.truediv", "math.divide",
    "math.maximum", "math.minimum", "math.negative", "math.abs", "math.square", "math.sqrt", "math.exp",
    "clip_by_value", "nn.relu", "nn.relu6", "math.sigmoid", "nn.sigmoid", "nn.silu", "nn.swish", "math.tanh",
    "nn.gelu", "nn.elu", "nn.selu", "math.softplus", "nn.softplus", "nn.softsign", "nn.leaky_relu"})


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "_keras_history")


def _scalar(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, np.number)):
        return True
    shape = getattr(value, "shape", None)
    return shape is not None and int(np.prod(tuple(shape))) == 1


def constants(node: Any) -> list[Any]:
    """The call's arguments that are not Keras tensors (scalars, names, arrays)."""
    import tensorflow as tf

    if hasattr(node, "arguments"):  # Keras 3
        args, kwargs = node.arguments.args, node.arguments.kwargs
    else:
        args, kwargs = node.call_args, node.call_kwargs
    return [v for v in tf.nest.flatten((list(args), dict(kwargs))) if not _is_tensor(v)]


def is_elementwise_op(layer: Any, node_constants: list[Any]) -> bool:
    """True for a Keras 3 op / tf_keras TFOpLambda from the lists above with only scalar operands."""
    cls = type(layer)
    if cls.__module__.startswith("keras.src.ops.") and cls.__name__ in KERAS3_OPS:
        known = True
    elif cls.__name__ == "TFOpLambda" and cls.__module__.startswith("tf_keras."):
        known = layer.get_config().get("function") in TF_FUNCTIONS
    else:
        known = False
    return known and all(_scalar(v) for v in node_constants)
