"""`sparsity_report`: how many kernel weights are zero, per layer and in total."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeopt._layers import WEIGHT_LAYER_TYPES, iter_layers, kernel_of, layer_type


@dataclass
class LayerSparsity:
    name: str
    type: str
    params: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.params if self.params else 0.0


@dataclass
class SparsityReport:
    """Per-layer and total sparsity of the prunable kernels of a model."""

    layers: list[LayerSparsity]

    @property
    def prunable_params(self) -> int:
        return sum(l.params for l in self.layers)

    @property
    def sparsity(self) -> float:
        return sum(l.zeros for l in self.layers) / max(1, self.prunable_params)

    def __getitem__(self, name: str) -> LayerSparsity:
        return next(l for l in self.layers if l.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"sparsity": self.sparsity, "prunable_params": self.prunable_params,
                "layers": [dict(asdict(l), sparsity=l.sparsity) for l in self.layers]}

    def __str__(self) -> str:
        lines = [f"{'layer':<24} {'type':<16} {'params':>9} {'sparsity':>9}"]
        lines += [f"{l.name:<24} {l.type:<16} {l.params:>9} {l.sparsity:>8.1%}" for l in self.layers]
        lines.append(f"{'total':<24} {'':<16} {self.prunable_params:>9} {self.sparsity:>8.1%}")
        return "\n".join(lines)


def sparsity_report(model: Any) -> SparsityReport:
    """Zeros in the kernels of every Dense/Conv/DepthwiseConv layer of `model`."""
    layers = []
    for layer in iter_layers(model):
        kind = layer_type(layer)
        kernel = kernel_of(layer) if kind in WEIGHT_LAYER_TYPES else None
        if kernel is None:
            continue
        values = np.asarray(kernel.numpy())
        layers.append(LayerSparsity(layer.name, kind, int(values.size), int(np.count_nonzero(values == 0))))
    return SparsityReport(layers)
