"""Parameters and multiply-accumulates of a model, or of a channel plan before it is built.

MACs count the Dense, Conv1D/2D/3D, DepthwiseConv1D/2D and SeparableConv1D/2D calls
(the layers that dominate inference time), once per call, for one sample. Spatial sizes
come from the model's static shapes; an unknown (None) spatial size counts as 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeopt.channels.graph import ChannelGraph, Node
from edgeopt.channels.kinds import DEPTHWISE, PRODUCERS, SEPARABLE

CONV_TYPES = PRODUCERS | DEPTHWISE | SEPARABLE


@dataclass
class ModelCost:
    """Total parameters and MACs per sample, and each layer's share."""

    params: int
    macs: int
    layers: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _channels_last(node: Node) -> bool:
    return node.layer.get_config().get("data_format") in (None, "channels_last")


def _node_macs(node: Node, in_ch: int, out_ch: int) -> int:
    config = node.layer.get_config()
    out_shape = node.out_shapes[0]
    spatial = out_shape[1:-1] if _channels_last(node) else out_shape[2:]
    positions = math.prod(d or 1 for d in spatial)
    kernel = math.prod(config.get("kernel_size", (1,)))
    multiplier = config.get("depth_multiplier", 1)
    if node.kind == "Dense":
        return positions * in_ch * out_ch
    if node.kind in DEPTHWISE:
        return positions * kernel * in_ch * multiplier
    if node.kind in SEPARABLE:
        return positions * (kernel * in_ch * multiplier + in_ch * multiplier * out_ch)
    return positions * kernel * (in_ch // config.get("groups", 1)) * out_ch


def _channels(node: Node, shape: tuple) -> int:
    return (shape[-1] if _channels_last(node) else shape[1]) or 0


def _role_params(graph: ChannelGraph, role: Any, counts: dict[int, int]) -> int:
    config = role.layer.get_config()
    bias = bool(config.get("use_bias", True))
    if role.kind == "Reshape":
        return 0
    if role.kind == "BatchNormalization":
        return len(role.layer.get_weights()) * graph.space_size(role.space, counts)
    kernel = math.prod(config.get("kernel_size", (1,)))
    if role.kind in DEPTHWISE:
        return (kernel + bias) * graph.space_size(role.space, counts)
    n_in, n_out = graph.space_size(role.in_space, counts), counts[graph.group_of(role.out_atom)]
    if role.kind in SEPARABLE:
        m = role.multiplier
        return kernel * n_in * m + n_in * m * n_out + bias * n_out
    return kernel * n_in * n_out + bias * n_out


def graph_cost(graph: ChannelGraph, counts: dict[int, int] | None = None) -> ModelCost:
    """Cost of the model `graph` was built from, or of it pruned to `counts` (group -> kept)."""
    counts = counts or {g.index: max(g.size, 0) for g in graph.groups}
    layers: dict[str, dict[str, int]] = {}
    seen: set[int] = set()
    for node in graph.nodes:
        layer = node.layer
        entry = layers.setdefault(layer.name, {"params": 0, "macs": 0})
        role = graph.roles.get(id(layer))
        if id(layer) not in seen:
            seen.add(id(layer))
            if role is not None:
                entry["params"] = _role_params(graph, role, counts)
            elif hasattr(layer, "count_params") and getattr(layer, "built", True):
                entry["params"] = int(sum(math.prod(w.shape) for w in layer.weights))
        if node.kind in CONV_TYPES and node.in_shapes:
            if role is not None:
                in_ch = graph.space_size(role.in_space or role.space, counts)
                out_ch = counts[graph.group_of(role.out_atom)] if role.out_atom is not None else in_ch
            else:
                in_ch, out_ch = _channels(node, node.in_shapes[0]), _channels(node, node.out_shapes[0])
            entry["macs"] += _node_macs(node, in_ch, out_ch)
        elif node.kind is None and hasattr(layer, "layers") and getattr(layer, "_nodes_by_depth", None):
            entry["macs"] += model_cost(layer).macs  # a nested model, as it stands
    return ModelCost(sum(e["params"] for e in layers.values()), sum(e["macs"] for e in layers.values()), layers)


def model_cost(model: Any) -> ModelCost:
    """Parameters and multiply-accumulates (per sample) of a functional or Sequential model.

    Example:

    ```python
    cost = edgeopt.channels.model_cost(model)
    print(cost.params, cost.macs / 1e6, "MMACs")
    ```

    Args:
        model: a Keras 3 or tf_keras functional/Sequential model; not modified.

    Returns:
        A `ModelCost`: `params` (every weight, trainable or not), `macs` (Dense, Conv,
        DepthwiseConv and SeparableConv layers) and a per-layer breakdown.

    Raises:
        ConfigError: a subclassed or unbuilt model.
    """
    return graph_cost(ChannelGraph(model))
