"""The graph rewrite of edgeopt's Keras 3 QAT: a new functional model with ranges where TFLite needs them.

The model's graph (nested models flattened, bare Keras ops such as MobileNetV3's
`x + 3` included) is walked once. Every float tensor a quantized op reads or writes
gets a range, except where the converter fuses ops: no range between a convolution or
Dense and the BatchNormalization folded into it, or before a ReLU/ReLU6 fused into the
op before it; pooling, padding and reshapes keep their input's range (AVERAGE_POOL_2D
must). Integer tensors (token ids) are never quantized. A layer left in float (not
selected, or skipped) reads dequantized inputs, and the next quantized op re-quantizes
its output, as the converter does. The model's inputs, outputs and output names stay
as they were.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

import keras
import numpy as np
from keras import tree
from keras.src.saving.serialization_lib import SafeModeScope

from edgeopt._layers import layer_type
from edgeopt.errors import ConfigError
from edgeopt.qat.keras3_attention import FakeQuantLayerNormalization, FakeQuantMultiHeadAttention
from edgeopt.qat import keras3_layers
from edgeopt.qat.keras3_layers import (FakeQuantBatchNormalization, FakeQuantConv1D, FakeQuantConv2D,
                                       FakeQuantConv2DTranspose, FakeQuantDense, FakeQuantDepthwiseConv2D,
                                       FakeQuantEinsumDense, FakeQuantEmbedding, FakeQuantNormalization,
                                       FakeQuantRescaling, FakeQuantSeparableConv2D)
from edgeopt.qat.keras3_quantizers import (ACTIVATIONS, FIXED_RANGES, LINEAR, FakeQuantActivation,
                                           FakeQuantActivationFunction, QuantizedOutput, activation_name)

WEIGHTED = {"Conv1D": FakeQuantConv1D, "Conv2D": FakeQuantConv2D, "DepthwiseConv2D": FakeQuantDepthwiseConv2D,
            "SeparableConv2D": FakeQuantSeparableConv2D, "Conv2DTranspose": FakeQuantConv2DTranspose,
            "Dense": FakeQuantDense, "EinsumDense": FakeQuantEinsumDense}
REPLACED = dict(WEIGHTED, BatchNormalization=FakeQuantBatchNormalization, Rescaling=FakeQuantRescaling,
                Normalization=FakeQuantNormalization, LayerNormalization=FakeQuantLayerNormalization,
                MultiHeadAttention=FakeQuantMultiHeadAttention, Embedding=FakeQuantEmbedding,
                Activation=FakeQuantActivationFunction)
if hasattr(keras3_layers, "FakeQuantLayerScale"):
    REPLACED["LayerScale"] = keras3_layers.FakeQuantLayerScale
# Bare activation ops TFLite runs as two int8 ops: replaced by a layer with a range between.
DECOMPOSED_OPS = {"op:Silu": "silu", "op:HardSigmoid": "hard_sigmoid"}
FOLDS_BN = {"Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"}
FUSES_RELU = FOLDS_BN | {"BatchNormalization", "Add", "Subtract", "Multiply", "op:Add", "op:Subtract", "op:Multiply"}
PASS_THROUGH = {
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "Identity", "Flatten", "Reshape", "Permute", "Cropping1D", "Cropping2D",
    "ZeroPadding1D", "ZeroPadding2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "UpSampling1D", "UpSampling2D", "RepeatVector",
    "op:Reshape", "op:Transpose", "op:ExpandDims", "op:Squeeze", "op:GetItem",
}
RANGED = {
    "Add", "Subtract", "Multiply", "Maximum", "Minimum", "Concatenate", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "ReLU", "LeakyReLU",
    "op:Add", "op:Subtract", "op:Multiply", "op:TrueDivide", "op:Divide", "op:Maximum", "op:Minimum", "op:Mean",
    "op:Matmul", "op:Einsum", "op:Concatenate", "op:Stack", "op:Cast", "op:Relu", "op:Relu6", "op:Gelu",
    "op:HardSilu", "op:LeakyRelu", "op:Exp",
}
FIXED = {"Softmax": "softmax", "op:Softmax": "softmax", "op:Sigmoid": "sigmoid", "op:Tanh": "tanh"}
NESTED = ("Functional", "Sequential")
KNOWN_LAYERS = set(REPLACED) | PASS_THROUGH | RANGED | set(FIXED) | set(NESTED) | {"InputLayer"}


def kind_of(op) -> str:
    """`Conv2D`-style names for layers (subclasses included), `op:Add`-style for bare Keras ops."""
    if isinstance(op, keras.layers.Layer):
        return layer_type(op, KNOWN_LAYERS)
    return "op:" + type(op).__name__


def graph_of(op):
    """The functional graph of a nested model, or None for a layer or op."""
    kind = kind_of(op)
    if kind == "Functional":
        return op
    if kind == "Sequential":
        return getattr(op, "_functional", None)
    return None


def leaf_nodes(graph):
    """Every node of `graph` that runs a layer or op, nested models flattened, in run order."""
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if node.is_input:
                continue
            inner = graph_of(node.operation)
            if inner is not None:
                yield from leaf_nodes(inner)
            else:
                yield node


def _is_float(tensor) -> bool:
    return keras.backend.is_float_dtype(tensor.dtype)


def _last_axis(axis, rank) -> bool:
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    return len(axes) == 1 and axes[0] in (-1, rank - 1)


def unsupported_reason(node) -> str | None:
    """Why edgeopt's QAT cannot make this float op int8, or None."""
    op, kind = node.operation, kind_of(node.operation)
    rank = len(node.input_tensors[0].shape) if node.input_tensors else 0
    if kind not in KNOWN_LAYERS | RANGED | set(FIXED) | PASS_THROUGH | set(DECOMPOSED_OPS):
        return "no int8 TFLite equivalent known to edgeopt"
    if getattr(op, "data_format", "channels_last") != "channels_last":
        return "channels_first (TFLite is channels_last)"
    groups = getattr(op, "groups", 1)
    if groups != 1 and not (kind == "Conv2D" and groups == node.input_tensors[0].shape[-1]):
        return "grouped convolution (only one group per input channel, i.e. depthwise)"
    activation = getattr(op, "activation", None)
    if kind in REPLACED and activation_name(activation) not in ACTIVATIONS:
        return f"activation {activation_name(activation)!r} has no int8 TFLite kernel"
    if kind == "ReLU" and (op.max_value not in (None, 6.0) or op.negative_slope or op.threshold):
        return "ReLU with a slope, threshold or cap other than 6"
    if kind in ("BatchNormalization", "LayerNormalization", "Normalization", "Softmax") and not _last_axis(
            op.axis, rank):
        return f"axis={op.axis} (only the last axis is supported)"
    if kind == "BatchNormalization" and getattr(op, "renorm", False):
        return "batch renormalization"
    if kind == "LayerNormalization" and op.rms_scaling:
        return "rms_scaling"
    if kind == "MultiHeadAttention" and getattr(op, "_use_gate", False):
        return "gated attention"
    if kind == "Rescaling":
        for value in (op.scale, op.offset):
            if np.size(value) not in (1, node.input_tensors[0].shape[-1]):
                return "scale/offset not per channel"
    return None


class GraphRewrite:
    """Builds the quantization-aware copy of one model.

    Args:
        model: the functional model (a Sequential's inner functional graph).
        chosen: whether a leaf op is quantized (else it stays float).
    """

    def __init__(self, model: Any, chosen: Callable[[Any], bool]):
        self.model = model
        self.chosen = chosen
        self.consumers: dict[int, list] = defaultdict(list)
        self.node_counts: dict[int, int] = defaultdict(int)
        self.graph_outputs: set[int] = set()
        self.names: set[str] = set()  # original names, reserved for the copies of their ops
        self._scan(model)
        self.outer_outputs = {id(t) for t in model.outputs}
        self.claimed: set[str] = set()
        self.copies: dict[int, Any] = {}  # id(original op) -> its copy
        self.pairs: list[tuple[Any, Any]] = []
        self.quantized: set[int] = set()  # ids of new tensors that carry a range
        self.pending: set[int] = set()  # ids of new tensors going raw into an op fused with theirs
        self.requantized: dict[int, Any] = {}

    def _scan(self, graph):
        for depth in graph._nodes_by_depth.values():
            for node in depth:
                self.names.add(node.operation.name)
                if node.is_input:
                    continue
                self.node_counts[id(node.operation)] += 1
                for tensor in node.input_tensors:
                    self.consumers[id(tensor)].append(node)
                inner = graph_of(node.operation)
                if inner is not None:
                    self._scan(inner)
        self.graph_outputs.update(id(t) for t in graph.outputs)

    # -- planning -------------------------------------------------------------------------------
    def fused_consumer(self, node) -> str | None:
        """`"bn"` or `"relu"` when this node's output goes raw into an op the converter fuses."""
        op = node.operation
        if len(node.outputs) != 1 or self.node_counts[id(op)] != 1 or id(node.outputs[0]) in self.graph_outputs:
            return None
        users = self.consumers[id(node.outputs[0])]
        if len(users) != 1 or self.node_counts[id(users[0].operation)] != 1 or graph_of(users[0].operation):
            return None
        user = users[0].operation
        linear = activation_name(getattr(op, "activation", None)) in LINEAR
        if not (linear and self.chosen(op) and self.chosen(user)):
            return None
        kind, user_kind = kind_of(op), kind_of(user)
        flat = kind != "Dense" or len(node.input_tensors[0].shape) == 2  # else TFLite keeps the BN apart
        if user_kind == "BatchNormalization" and kind in FOLDS_BN and flat and unsupported_reason(users[0]) is None:
            return "bn"
        if kind in FUSES_RELU and _fusable_relu(user):
            return "relu"
        return None

    def _standalone(self, node) -> bool:
        history = node.input_tensors[0]._keras_history
        producer = history.operation._inbound_nodes[history.node_index] if history.operation else None
        return producer is None or producer.is_input or self.fused_consumer(producer) != "bn"

    # -- building -------------------------------------------------------------------------------
    def _claim(self, name: str, *, reserved_ok: bool = False) -> str:
        candidate, i = name, 0
        while candidate in self.claimed or (not reserved_ok and candidate in self.names):
            i += 1
            candidate = f"{name}_{i}"
        self.claimed.add(candidate)
        return candidate

    def _copy(self, op, cls=None, **overrides):
        if id(op) in self.copies:
            return self.copies[id(op)]
        config = op.get_config()
        config.update(overrides)
        config["name"] = self._claim(overrides.get("name", op.name), reserved_ok=True)
        try:
            # The model is already in memory: its Lambda functions are the caller's own code.
            with SafeModeScope(False):
                copy = (cls or op.__class__).from_config(config)
        except Exception as exc:  # custom layers without a working get_config
            raise ConfigError(f"Cannot copy layer {op.name!r} ({type(op).__name__}) for QAT. Received: "
                              f"{type(exc).__name__}: {str(exc)[:200]}. Give the layer a get_config that "
                              "from_config accepts.") from exc
        self.copies[id(op)] = copy
        self.pairs.append((op, copy))
        return copy

    def _range(self, tensor, name: str, fixed=None, exact_name: bool = False):
        quantizer = FakeQuantActivation(name=self._claim(name, reserved_ok=exact_name), fixed_range=fixed)
        out = quantizer(tensor)
        self.quantized.add(id(out))
        return out

    def _quantize_input(self, tensor):
        if (not isinstance(tensor, keras.KerasTensor) or not _is_float(tensor) or id(tensor) in self.quantized
                or id(tensor) in self.pending):
            return tensor
        if id(tensor) not in self.requantized:
            self.requantized[id(tensor)] = self._range(tensor, f"{tensor._keras_history.operation.name}_quant")
        return self.requantized[id(tensor)]

    def build(self) -> Any:
        inputs = tree.map_structure(lambda x: keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x.name),
                                    self.model._inputs_struct)
        for x in tree.flatten(inputs):
            self.claimed.add(x.name)
        tensors = {id(x): y for x, y in zip(self.model.inputs, tree.flatten(inputs))}
        self._walk(self.model, tensors)
        outputs = tree.pack_sequence_as(self.model._outputs_struct, [tensors[id(x)] for x in self.model.outputs])
        qat = keras.Model(inputs, outputs, name=self.model.name)
        for original, copy in self.pairs:
            _copy_weights(original, copy)
        return qat

    def _walk(self, graph, tensors: dict):
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                if node.is_input:
                    continue
                inner = graph_of(node.operation)
                if inner is not None and self.chosen(node.operation):
                    for x, t in zip(inner.inputs, node.input_tensors):
                        tensors[id(x)] = tensors[id(t)]
                    self._walk(inner, tensors)
                    results = [tensors[id(x)] for x in inner.outputs]
                else:
                    args, kwargs = node.arguments.fill_in(tensors)
                    results = tree.flatten(self._visit(node, args, kwargs))
                for x, y in zip(node.outputs, results):
                    tensors[id(x)] = y

    def _visit(self, node, args, kwargs):
        op, kind = node.operation, kind_of(node.operation)
        if not any(_is_float(t) for t in node.outputs) or not self.chosen(op):
            return self._copy(op)(*args, **kwargs)  # integer or float op: as it is
        fused = self.fused_consumer(node)
        if kind == "MultiHeadAttention":  # masks are not activations
            args = [self._quantize_input(a) if i < 3 else a for i, a in enumerate(args)]
            kwargs = {k: self._quantize_input(v) if k in ("query", "value", "key") else v for k, v in kwargs.items()}
        elif kind != "Embedding":  # token ids, even as floats, are not activations
            args, kwargs = tree.map_structure(self._quantize_input, (args, kwargs))
        if kind in REPLACED or kind in DECOMPOSED_OPS:
            return self._mark(self._replacement(node, kind, fused)(*args, **kwargs), fused)
        if kind in PASS_THROUGH:
            out = self._copy(op)(*args, **kwargs)
            floats = [t for t in tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor) and _is_float(t)]
            return self._mark(out) if all(id(t) in self.quantized for t in floats) else out
        outer = len(node.outputs) == 1 and id(node.outputs[0]) in self.outer_outputs and not fused
        out = self._copy(op, name=f"{op.name}_float" if outer else op.name)(*args, **kwargs)
        if fused:
            return self._mark(out, fused)
        fixed = FIXED_RANGES[FIXED[kind]] if kind in FIXED else None
        return tree.map_structure(
            lambda t: self._range(t, op.name if outer else f"{op.name}_quant", fixed, exact_name=outer)
            if _is_float(t) else t, out)

    def _mark(self, out, fused=None):
        """Records the float outputs as carrying a range, or as raw inputs of a fused op."""
        for t in tree.flatten(out):
            if isinstance(t, keras.KerasTensor) and _is_float(t):
                (self.pending if fused else self.quantized).add(id(t))
        return out

    def _replacement(self, node, kind, fused):
        op = node.operation
        if kind in DECOMPOSED_OPS:
            if id(op) not in self.copies:
                layer = FakeQuantActivationFunction(DECOMPOSED_OPS[kind], quantize_output=not fused,
                                                    name=self._claim(op.name, reserved_ok=True))
                self.copies[id(op)] = layer
            return self.copies[id(op)]
        overrides: dict = {"quantize_output": not fused} if issubclass(REPLACED[kind], QuantizedOutput) else {}
        if kind == "BatchNormalization":
            overrides["standalone"] = self._standalone(node)
        if kind == "Activation":
            overrides["activation"] = activation_name(op.activation)
        return self._copy(op, REPLACED[kind], **overrides)


def _fusable_relu(op) -> bool:
    kind = kind_of(op)
    if kind == "ReLU":
        return op.max_value in (None, 6.0) and not op.negative_slope and not op.threshold
    if kind == "Activation":
        return activation_name(op.activation) in ("relu", "relu6")
    return kind in ("op:Relu", "op:Relu6")


def _copy_weights(original, copy) -> None:
    if not getattr(original, "weights", None):
        return
    skip = {id(w) for w in getattr(copy, "range_variables", lambda: [])()}
    targets = [w for w in copy.weights if id(w) not in skip]
    sources = original.weights
    if len(targets) != len(sources):
        raise ConfigError(f"QAT copy of layer {original.name!r} has {len(targets)} weights, the layer "
                          f"{len(sources)}. Received: {type(original).__name__}. Report this as an edgeopt bug.")
    for target, source in zip(targets, sources):
        target.assign(source)
    if hasattr(copy, "finalize_state"):
        copy.finalize_state()  # layers that cache their weights (Normalization)
