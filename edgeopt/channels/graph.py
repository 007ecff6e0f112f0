"""Channel dependency groups of a functional or Sequential Keras model.

Every layer-output tensor has a *channel space*: its last axis, described as a list of
*atoms* (a Conv/Dense output is one atom; a `Concatenate` output is the list of its
inputs' atoms; a `Flatten` output repeats its input's atoms once per spatial position).
Layers that tie channels together (a residual `Add`, a `Multiply` with a squeeze-excite
gate, a depthwise convolution following its input, a layer shared between calls) unify
atoms with union-find. Each resulting set is a *group*: its channels are kept or removed
together, and every producer in it shares one mask.

A layer the rules below do not cover (unknown or custom types, `Lambda`, TF/Keras ops,
nested models, channels-first data, grouped convolutions, softmax over channels...) is a
*barrier*: the groups it reads and writes are frozen, never guessed at. Model inputs and
outputs are frozen too, so they keep their shapes. Written here rather than taken from a
library: tfmot and the TFLite converter prune weights, not channels of a Keras graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edgeopt import _keras
from edgeopt.channels.kinds import (DEPTHWISE, ELEMENTWISE, MERGES, MIXING, MIXING_ACTIVATIONS, PASSTHROUGH, POOLING,
                                     PRODUCERS, SEPARABLE, Mixing, builtin_kind, constants, is_elementwise_op)
from edgeopt.errors import ConfigError

@dataclass(frozen=True)
class Space:
    """A tensor's last axis: `atoms` side by side, the whole repeated `tile` times."""

    atoms: tuple[int, ...]
    tile: int = 1


@dataclass
class Role:
    """How a layer's weights or config follow the channels.

    `in_space`/`out_atom` for Dense/Conv/Separable (the kernel's input and output axis);
    `space` for DepthwiseConv/BatchNormalization (per-channel weights) and Reshape
    (its target shape's last entry).
    """

    layer: Any
    kind: str
    in_space: Space | None = None
    out_atom: int | None = None
    space: Space | None = None
    multiplier: int = 1


@dataclass
class Node:
    """One call of a layer in the model, with static shapes (batch axis included)."""

    layer: Any
    kind: str | None
    in_shapes: list[tuple]
    out_shapes: list[tuple]
    in_spaces: list[Space]
    out_spaces: list[Space]


@dataclass
class Group:
    """Channels kept or removed together: every producer of the group shares one mask."""

    index: int
    size: int
    atoms: list[int]
    producers: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)  # unsupported layers that froze it

    @property
    def name(self) -> str:
        return self.producers[0] if self.producers else f"group_{self.index}"

    @property
    def prunable(self) -> bool:
        return not self.frozen and bool(self.producers) and self.size > 1


def _shape(tensor: Any) -> tuple:
    shape = tensor.shape
    return tuple(shape.as_list()) if hasattr(shape, "as_list") else tuple(shape)


def _key(tensor: Any) -> tuple:
    history = tensor._keras_history
    return id(history[0]), history[1], history[2]


def _functional(model: Any) -> Any:
    """The object holding the model's graph, or a ConfigError for subclassed / unbuilt models."""
    _keras.flavour_of(model)
    names = [c.__name__ for c in type(model).__mro__]
    if "Sequential" in names:
        graph = getattr(model, "_functional", model)  # Keras 3 keeps a Functional inside a Sequential
        if getattr(graph, "_nodes_by_depth", None) is None or not getattr(model, "inputs", None):
            raise ConfigError(
                f"The Sequential model {model.name!r} has no known input shape. Received: an unbuilt Sequential "
                "model. Start it with keras.Input(shape=...) (or call model.build(input_shape)) and retry.")
        return graph
    overrides_call = any("call" in vars(c) for c in type(model).__mro__
                         if c.__module__.split(".", 1)[0] not in ("keras", "tf_keras"))
    if "Functional" not in names or overrides_call or getattr(model, "_nodes_by_depth", None) is None:
        raise ConfigError(
            "Channel pruning supports only functional and Sequential models (it reads their layer graph). "
            f"Received: a subclassed model of type {type(model).__qualname__}. Build the model with "
            "keras.Model(inputs, outputs) or keras.Sequential([...]).")
    return model


def _nodes(graph: Any) -> list[tuple[Any, list, list, list]]:
    """(layer, input tensors, output tensors, other arguments) for every call, inputs before their users."""
    import tensorflow as tf

    calls = []
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            layer = getattr(node, "operation", None) or getattr(node, "layer", None)
            inputs = node.input_tensors if hasattr(node, "operation") else node.keras_inputs
            calls.append((layer, [] if node.is_input else list(inputs), tf.nest.flatten(node.outputs),
                          [] if node.is_input else constants(node)))
    return calls


def _channels_last(config: dict) -> bool:
    return config.get("data_format") in (None, "channels_last")


def _activation_problem(config: dict) -> str | None:
    """None for an elementwise activation; a `Mixing` reason for softmax & co; a plain one if unknown."""
    activation = config.get("activation")
    if activation is None or isinstance(activation, str) and activation in ELEMENTWISE:
        return None
    if isinstance(activation, str) and activation in MIXING_ACTIVATIONS:
        return Mixing(f"activation {activation!r} mixes channels")
    if isinstance(activation, dict):  # a serialized custom function or object
        activation = activation.get("config") if isinstance(activation.get("config"), str) else \
            activation.get("class_name")
    return f"unknown activation {activation!r}"


def _axis_is_last(axis: Any, rank: int) -> bool:
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    return len(axes) == 1 and isinstance(axes[0], int) and axes[0] % rank == rank - 1


class ChannelGraph:
    """The channel groups of `model`, found from its layer graph (the model is only read)."""

    def __init__(self, model: Any):
        self.model = model
        self.flavour = _keras.flavour_of(model)
        graph = _functional(model)
        self.sizes: list[int] = []
        self._parent: list[int] = []
        self._reasons: dict[int, list[tuple[str, str]]] = {}
        self.roles: dict[int, Role] = {}
        self.nodes: list[Node] = []
        self._barred: set[int] = set()
        self._space: dict[tuple, Space] = {}
        for layer, inputs, outputs, others in _nodes(graph):
            self._visit(layer, inputs, outputs, others)
        for tensor in graph.outputs:
            self._freeze(self._space[_key(tensor)], "model output",
                         f"{tensor._keras_history[0].name} is a model output")
        self.groups = self._collect()
        self._group_of = {atom: g.index for g in self.groups for atom in g.atoms}

    # -- union-find over atoms -------------------------------------------------------------
    def _new_atom(self, size: Any) -> int:
        self.sizes.append(size if isinstance(size, int) else -1)
        self._parent.append(len(self._parent))
        return len(self._parent) - 1

    def find(self, atom: int) -> int:
        while self._parent[atom] != atom:
            self._parent[atom] = self._parent[self._parent[atom]]
            atom = self._parent[atom]
        return atom

    def _freeze(self, space: Space, kind: str, why: str) -> None:
        for atom in space.atoms:
            self._reasons.setdefault(atom, []).append((kind, why))

    def _unify(self, a: Space, b: Space, layer: Any) -> None:
        if a.tile != b.tile or [self.sizes[x] for x in a.atoms] != [self.sizes[y] for y in b.atoms]:
            for space in (a, b):
                self._freeze(space, "unsupported", f"{layer.name} (channel layouts of its inputs differ)")
            return
        for x, y in zip(a.atoms, b.atoms):
            self._parent[self.find(x)] = self.find(y)

    def group_of(self, atom: int) -> int:
        return self._group_of[atom]

    def space_size(self, space: Space, counts: dict[int, int] | None = None) -> int:
        """Length of the axis; `counts` (group -> kept channels) gives the pruned length."""
        inner = sum(counts[self.group_of(a)] if counts else self.sizes[a] for a in space.atoms)
        return inner * space.tile

    # -- the rules, one layer call at a time -----------------------------------------------
    def _visit(self, layer: Any, inputs: list, outputs: list, others: list) -> None:
        kind = builtin_kind(layer)
        in_spaces = [self._space[_key(t)] for t in inputs]
        in_shapes, out_shapes = [_shape(t) for t in inputs], [_shape(t) for t in outputs]
        if kind == "InputLayer" or not inputs:
            out = [Space((self._new_atom(s[-1] if s else -1),)) for s in out_shapes]
            for space in out:
                self._freeze(space, "model input", f"{layer.name} is a model input")
        else:
            if id(layer) in self._barred:
                out = None
            elif kind in (None, "TFOpLambda") and is_elementwise_op(layer, others):
                out = self._merge(layer, in_spaces, in_shapes, out_shapes)
            else:
                out = self._rule(layer, kind, in_spaces, in_shapes, out_shapes)
            if not isinstance(out, list):
                out = self._barrier(layer, kind, in_spaces, out_shapes, out)
        for tensor, space in zip(outputs, out):
            self._space[_key(tensor)] = space
        self.nodes.append(Node(layer, kind, in_shapes, out_shapes, in_spaces, out))

    def _barrier(self, layer: Any, kind: str | None, in_spaces: list[Space], out_shapes: list, why: str | None):
        label = f"{layer.name} ({type(layer).__name__}{', ' + why if why else ''})"
        severity = "mixes channels" if isinstance(why, Mixing) else "unsupported"
        self._barred.add(id(layer))
        role = self.roles.pop(id(layer), None)
        spaces = list(in_spaces) + [s for s in (role and (role.in_space, role.space)) or () if s is not None]
        if role is not None and role.out_atom is not None:
            spaces.append(Space((role.out_atom,)))
        for space in spaces:
            self._freeze(space, severity, label)
        out = [Space((self._new_atom(s[-1] if s else -1),)) for s in out_shapes]
        for space in out:
            self._freeze(space, severity, label)
        return out

    def _rule(self, layer, kind, spaces, in_shapes, out_shapes):
        """Output spaces of one call, or a short reason (str) / None for a barrier."""
        if kind is None:
            return "not a built-in Keras layer" if hasattr(layer, "weights") else "a Keras op"
        config = layer.get_config()
        single = len(spaces) == 1 and len(out_shapes) == 1
        if kind in PRODUCERS | SEPARABLE | DEPTHWISE | {"BatchNormalization"} and not single:
            return "several inputs"
        if not _channels_last(config):
            return "channels_first data"
        if kind in MIXING:
            return Mixing("mixes channels")
        if kind in PRODUCERS | SEPARABLE | DEPTHWISE:
            if config.get("groups", 1) != 1:
                return f"groups={config['groups']}"
            problem = _activation_problem(config)
            if problem and kind in DEPTHWISE:
                return problem
            expected = (2 if kind in SEPARABLE else 1) + bool(config.get("use_bias", True))
            if len(layer.weights) != expected:
                return "unexpected weights (quantized or LoRA?)"
            if kind in DEPTHWISE:
                if config.get("depth_multiplier", 1) != 1:
                    return f"depth_multiplier={config['depth_multiplier']}"
                return self._channelwise(layer, kind, spaces[0])
            out = self._producer(layer, kind, spaces[0], out_shapes[0][-1], config.get("depth_multiplier", 1))
            if problem:  # it reads its input like any kernel; only its own outputs are tied together
                self._freeze(out[0], "mixes channels" if isinstance(problem, Mixing) else "unsupported",
                             f"{layer.name} ({problem})")
            return out
        if kind == "BatchNormalization":
            expected = 2 + bool(config.get("center", True)) + bool(config.get("scale", True))
            if not _axis_is_last(config.get("axis", -1), len(in_shapes[0])):
                return f"axis={config.get('axis')}"
            if len(layer.weights) != expected:
                return "unexpected weights (renorm?)"
            return self._channelwise(layer, kind, spaces[0])
        if kind in PASSTHROUGH | POOLING:
            if kind == "Activation" and _activation_problem(config):
                return _activation_problem(config)
            return [spaces[0]] * len(out_shapes)
        if kind == "Flatten":
            dims = in_shapes[0][1:-1]
            if any(d is None for d in dims):
                return "unknown spatial size"
            return [Space(spaces[0].atoms, spaces[0].tile * math.prod(dims))]
        if kind == "Reshape":
            return self._reshape(layer, spaces[0], in_shapes[0][1:], out_shapes[0][1:])
        if kind == "Concatenate" and _axis_is_last(config.get("axis", -1), len(out_shapes[0])):
            if any(s.tile != 1 for s in spaces):
                return "concatenates flattened tensors"
            return [Space(tuple(a for s in spaces for a in s.atoms))]
        if kind in MERGES or kind == "Concatenate":
            return self._merge(layer, spaces, in_shapes, out_shapes)
        return None

    def _merge(self, layer, spaces, in_shapes, out_shapes):
        """Elementwise over several inputs: they share channels, except ones broadcast along the last axis."""
        if len(out_shapes) != 1 or not spaces:
            return "several outputs"
        last = out_shapes[0][-1]
        kept = [s for s, shape in zip(spaces, in_shapes) if shape and not (shape[-1] == 1 and last != 1)]
        if not kept or any(shape and shape[-1] not in (1, last) for shape in in_shapes):
            return "broadcasts the last axis"
        for other in kept[1:]:
            self._unify(kept[0], other, layer)
        return [kept[0]]

    def _producer(self, layer, kind, in_space, out_size, multiplier):
        role = self.roles.get(id(layer))
        if role is None:
            self.roles[id(layer)] = Role(layer, kind, in_space=in_space, out_atom=self._new_atom(out_size),
                                         multiplier=multiplier)
            return [Space((self.roles[id(layer)].out_atom,))]
        self._unify(role.in_space, in_space, layer)  # a shared layer reads one input layout
        return [Space((role.out_atom,))]

    def _channelwise(self, layer, kind, space):
        role = self.roles.setdefault(id(layer), Role(layer, kind, space=space))
        if role.space is not space:
            self._unify(role.space, space, layer)
        return [space]

    def _reshape(self, layer, space, in_shape, out_shape):
        if in_shape and out_shape and in_shape[-1] is not None and in_shape[-1] == out_shape[-1]:
            new = space  # the last axis stays the fastest-varying one: channels keep their places
        elif len(out_shape) == 1 and in_shape and all(d is not None for d in in_shape):
            new = Space(space.atoms, space.tile * math.prod(in_shape[:-1]))
        else:
            return "changes the last axis"
        if id(layer) in self.roles:
            return "shared Reshape"
        self.roles[id(layer)] = Role(layer, "Reshape", space=new)
        return [new]

    def _collect(self) -> list[Group]:
        by_root: dict[int, list[int]] = {}
        for atom in range(len(self.sizes)):
            by_root.setdefault(self.find(atom), []).append(atom)
        groups, index_of = [], {}
        for atoms in by_root.values():
            index_of.update({a: len(groups) for a in atoms})
            group = Group(len(groups), self.sizes[atoms[0]], atoms)
            for atom in atoms:
                for kind, why in self._reasons.get(atom, []):
                    if why not in group.frozen:
                        group.frozen.append(why)
                    if kind == "unsupported":
                        name = why.split(" (", 1)[0]
                        if name not in group.blockers:
                            group.blockers.append(name)
            if group.size < 0 and not group.frozen:
                group.frozen.append("unknown channel count")
            groups.append(group)
        for node in self.nodes:
            for space in node.out_spaces:
                for atom in space.atoms:
                    if node.layer.name not in groups[index_of[atom]].layers:
                        groups[index_of[atom]].layers.append(node.layer.name)
        for role in self.roles.values():
            if role.out_atom is not None:
                groups[index_of[role.out_atom]].producers.append(role.layer.name)
        return groups
