"""Finding the layers a technique applies to, in Keras 3 and tf_keras models alike.

Layers are recognised by class name along their MRO, so neither Keras needs to be
imported here and subclasses of the built-in layers are found too.
"""

from __future__ import annotations

import fnmatch
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from edgeopt.errors import ConfigError

WEIGHT_LAYER_TYPES = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv2D")


def iter_layers(model: Any) -> Iterator[Any]:
    """Every layer of `model`, descending into nested models, each once."""
    seen: set[int] = set()
    stack = list(getattr(model, "layers", []))[::-1]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        children = getattr(layer, "layers", None)
        if children:
            stack.extend(list(children)[::-1])
        else:
            yield layer


def layer_type(layer: Any, known: Any = WEIGHT_LAYER_TYPES) -> str:
    """The built-in layer type among `known` a layer is, or is derived from (e.g. `Conv2D`)."""
    for cls in type(layer).__mro__:
        if cls.__name__ in known and cls.__module__.split(".")[0] in ("keras", "tf_keras"):
            return cls.__name__
    return type(layer).__name__


def kernel_of(layer: Any) -> Any:
    """The layer's main weight variable (`depthwise_kernel` for tf_keras depthwise)."""
    kernel = getattr(layer, "depthwise_kernel", None)
    return kernel if kernel is not None else getattr(layer, "kernel", None)


@dataclass
class Target:
    """A selected layer and its kernel variable."""

    layer: Any
    variable: Any
    type: str

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def size(self) -> int:
        return int(np.prod(self.variable.shape))

    def read(self) -> np.ndarray:
        return np.asarray(self.variable.numpy())


def select_layers(
    model: Any,
    *,
    layer_types: Sequence[str] = WEIGHT_LAYER_TYPES,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    min_params: int = 0,
    what: str = "technique",
) -> list[Target]:
    """Layers of the given types whose names match `include` (all if None), not `exclude`.

    Raises:
        ConfigError: nothing matched; the message says which patterns matched nothing.
    """
    unknown = sorted(set(layer_types) - set(WEIGHT_LAYER_TYPES))
    if unknown:
        raise ConfigError(f"Unknown layer types for {what}. Received: layer_types={unknown}. "
                          f"Use some of: {', '.join(WEIGHT_LAYER_TYPES)}.")
    include = list(include) if include else None
    used: set[str] = set()
    targets = []
    for layer in iter_layers(model):
        kind = layer_type(layer)
        if kind not in layer_types:
            continue
        variable = kernel_of(layer)
        if variable is None:
            continue
        if include is not None:
            hits = [p for p in include if fnmatch.fnmatchcase(layer.name, p)]
            used.update(hits)
            if not hits:
                continue
        if any(fnmatch.fnmatchcase(layer.name, p) for p in exclude):
            continue
        target = Target(layer, variable, kind)
        if target.size < min_params:
            continue
        targets.append(target)
    unmatched = [p for p in include or [] if p not in used]
    if not targets:
        detail = f" Patterns that matched nothing: {unmatched}." if unmatched else ""
        raise ConfigError(
            f"No layer to apply {what} to. Received: layer_types={list(layer_types)}, include={include}, "
            f"exclude={list(exclude)}, min_params={min_params}.{detail} "
            f"Layers in the model: {[l.name for l in iter_layers(model)][:20]}."
        )
    if unmatched:
        warnings.warn(f"{what}: include patterns matched no layer: {unmatched}", stacklevel=3)
    return targets
