"""Quantization-aware training for Keras 3 models (TensorFlow backend), written here.

No maintained tool does it: tfmot needs tf_keras, and Keras 3's own `quantize("int8")`
is weight-only and does not convert to an int8 TFLite model. The scheme follows what
the TFLite converter reads from a quantization-aware graph (tfmot's default 8-bit
scheme does the same for tf_keras): `keras3_quantizers` holds the fake quantization,
`keras3_layers` and `keras3_attention` the layers that compute with it, and
`keras3_graph` the rewrite that puts them and the activation ranges into a new model.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import keras
import tensorflow as tf

from edgeopt.errors import ConfigError
from edgeopt.qat import keras3_attention, keras3_layers  # noqa: F401 - registers the QAT layers
from edgeopt.qat import selection
from edgeopt.qat.keras3_graph import GraphRewrite, graph_of, kind_of, leaf_nodes, unsupported_reason
from edgeopt.qat.keras3_quantizers import FakeQuantActivation, fake_quant_kernel

_fake_quant_kernel = fake_quant_kernel  # the name the tests and older code use
__all__ = ["quantize_aware_keras3", "FakeQuantActivation"]


def _all_names(graph) -> dict[str, str]:
    """Name -> class name of every layer and op, nested models and their contents included."""
    names = {}
    for node in leaf_nodes(graph):
        names[node.operation.name] = type(node.operation).__name__
    for op in graph.operations:
        inner = graph_of(op)
        if inner is not None:
            names[op.name] = type(op).__name__
            names.update(_all_names(inner))
    return names


def quantize_aware_keras3(model: Any, *, layers: Sequence[str] | None, layer_types: Sequence[str] | None,
                          skip: Sequence[str] | bool | None, preserve: str | None) -> Any:
    if preserve == "clusters":
        raise ConfigError("Cluster-preserving QAT is offered for tf_keras models (tfmot's CQAT) only. Received: "
                          "preserve='clusters' for a Keras 3 model. Drop it (shared values then drift during QAT), "
                          "or build the model with tf_keras.")
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(f"Keras 3 QAT needs the TensorFlow backend (the TFLite converter reads TF graphs). "
                          f"Received: KERAS_BACKEND={keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow.")
    graph = graph_of(model) if isinstance(model, keras.Model) else None
    if graph is None or not getattr(graph, "inputs", None):
        raise ConfigError(f"Keras 3 QAT needs a functional or a built Sequential model. Received: "
                          f"{type(model).__name__} {getattr(model, 'name', '')!r}. Rebuild it with keras.Input and "
                          "the functional API (or give the Sequential model a keras.Input first).")
    def types_of(op) -> set[str]:
        return {kind_of(op).removeprefix("op:"), type(op).__name__}

    selection.check_selection(_all_names(graph), set().union(*(types_of(n.operation) for n in leaf_nodes(graph))),
                              layers=layers, layer_types=layer_types, skip=skip)
    skipped = selection.skip_names(skip)

    def selected(op) -> bool:
        return selection.is_selected(op.name, types_of(op), layers=layers, layer_types=layer_types)

    unsupported: dict[str, tuple[str, str]] = {}
    for node in leaf_nodes(graph):
        op = node.operation
        if selected(op) and op.name not in skipped and any(keras.backend.is_float_dtype(t.dtype)
                                                           for t in node.outputs):
            reason = unsupported_reason(node)
            if reason:
                unsupported.setdefault(op.name, (type(op).__name__, reason))
    refused = selection.refused(unsupported, skip)
    if refused:
        detail = "; ".join(f"{n}: {unsupported[n][1]}" for n in refused)
        raise ConfigError(
            f"Keras 3 QAT cannot quantize these layers: {[(n, unsupported[n][0]) for n in refused]} ({detail}). "
            f"Received: model {model.name!r}. Pass skip={refused} (or skip=True) to leave them in float (the "
            "export then lists them among its float ops), or replace them.")
    if unsupported:
        warnings.warn(f"quantize_aware: left in float: {list(unsupported)}", stacklevel=3)
    left_float = skipped | set(unsupported)

    def chosen(op) -> bool:
        if graph_of(op) is not None:
            return op.name not in left_float
        return selected(op) and op.name not in left_float

    qat = GraphRewrite(graph, chosen).build()
    if preserve == "sparsity":
        for layer in qat.layers:
            for kernel in getattr(layer, "kernel_variables", lambda: [])():
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
