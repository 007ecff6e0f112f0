"""Building the smaller model: new layer configs with fewer filters/units, sliced weights.

The model is cloned layer by layer (`clone_model` with a clone function, so custom
layers and both Keras flavours keep working); every layer keeps its name and the
input model is only read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt import _keras
from edgeopt.channels.graph import ChannelGraph, Role, Space
from edgeopt.channels.kinds import builtin_kind
from edgeopt.errors import ConfigError


def space_indices(graph: ChannelGraph, space: Space, keep: dict[int, np.ndarray]) -> np.ndarray:
    """The positions kept along an axis laid out as `space`, in order."""
    inner = sum(graph.sizes[a] for a in space.atoms)
    parts, offset = [], 0
    for atom in space.atoms:
        parts.append(keep[graph.group_of(atom)] + offset)
        offset += graph.sizes[atom]
    row = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return np.concatenate([row + inner * t for t in range(space.tile)]).astype(np.int64)


def _fresh(layer: Any, config: dict) -> Any:
    if isinstance(config.get("activation"), dict) and callable(getattr(layer, "activation", None)):
        config = {**config, "activation": layer.activation}  # a custom function: reuse it, do not deserialize it
    try:
        return layer.__class__.from_config(config)
    except Exception as exc:
        if builtin_kind(layer) == "Lambda":  # a new Lambda around the same, already loaded, function
            return type(layer)(layer.function, output_shape=layer._output_shape, mask=layer.mask,
                               arguments=layer.arguments, name=layer.name)
        raise ConfigError(
            f"Cannot copy layer {layer.name!r} ({type(layer).__name__}): from_config(get_config()) failed. "
            f"Received: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "Give the layer a get_config() that returns its constructor arguments.") from exc


def _sliced(graph: ChannelGraph, role: Role, weights: list[np.ndarray], keep: dict[int, np.ndarray]) -> list:
    if role.kind == "Reshape":
        return weights
    if role.space is not None:  # DepthwiseConv (kernel [..., C, 1], bias [C]) or BatchNormalization ([C] each)
        index = space_indices(graph, role.space, keep)
        axis = -2 if role.kind.startswith("Depthwise") else 0
        return [np.take(weights[0], index, axis=axis)] + [np.take(w, index, axis=0) for w in weights[1:]]
    rows = space_indices(graph, role.in_space, keep)
    cols = keep[graph.group_of(role.out_atom)]
    if role.kind.startswith("Separable"):  # depthwise [..., C, m], pointwise [1, .., C*m, F], bias [F]
        m = role.multiplier
        pointwise_rows = (rows[:, None] * m + np.arange(m)[None, :]).reshape(-1)
        depthwise = np.take(weights[0], rows, axis=-2)
        pointwise = np.take(np.take(weights[1], pointwise_rows, axis=-2), cols, axis=-1)
        return [depthwise, pointwise] + [np.take(b, cols) for b in weights[2:]]
    kernel = np.take(np.take(weights[0], rows, axis=-2), cols, axis=-1)  # Dense [in, out], Conv [..., in, out]
    return [kernel] + [np.take(b, cols) for b in weights[1:]]


def rebuild(graph: ChannelGraph, keep: dict[int, np.ndarray]) -> Any:
    """A new model with only the `keep[group]` channels of every group."""
    k = _keras.keras_module(graph.flavour)
    counts = {index: len(kept) for index, kept in keep.items()}

    def clone(layer):
        if builtin_kind(layer) is None and not hasattr(layer, "get_weights"):
            return layer  # a stateless Keras 3 op: nothing to copy
        config = layer.get_config()
        role = graph.roles.get(id(layer))
        if role is not None and role.out_atom is not None:
            config["units" if "units" in config else "filters"] = counts[graph.group_of(role.out_atom)]
        elif role is not None and role.kind == "Reshape" and config["target_shape"][-1] != -1:
            config["target_shape"] = (*tuple(config["target_shape"])[:-1], graph.space_size(role.space, counts))
        return _fresh(layer, config)

    model = graph.model
    inputs = None
    if graph.flavour == "keras3" and not hasattr(model, "_functional"):  # keep the input layers' names
        inputs = k.tree.map_structure(lambda t: k.Input(batch_shape=t.shape, dtype=t.dtype,
                                                        name=t._keras_history[0].name), model.input)
    new = k.models.clone_model(model, clone_function=clone, input_tensors=inputs)
    done = set()
    for node in graph.nodes:
        layer = node.layer
        if id(layer) in done or builtin_kind(layer) == "InputLayer" or not hasattr(layer, "get_weights"):
            continue
        done.add(id(layer))
        weights = layer.get_weights()
        if not weights:
            continue
        role = graph.roles.get(id(layer))
        target = new.get_layer(layer.name)
        target.set_weights(weights if role is None else _sliced(graph, role, weights, keep))
    return new
