"""`sparsity_report`: how many kernel weights are zero, per layer, in total, and in the whole model."""

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
    """Per-layer and total sparsity of the prunable kernels of a model, and what share of
    the whole model they are.

    `sparsity` is over the prunable kernels only (the Dense/Conv/DepthwiseConv kernels
    that `Pruning` selects by default). Those may be a small part of the model (an
    LSTM's or an attention layer's weights are not among them), so `covered_fraction`
    says which share of all the model's parameters they hold, and `model_sparsity`
    which share of all its parameters is zero: 50 % sparse kernels that hold 2 % of the
    parameters make a model about 1 % sparse.

    Attributes:
        layers: one `LayerSparsity` per prunable kernel.
        model_params: every parameter of the model (each weight variable once,
            trainable or not, biases and normalization statistics included).
        model_zeros: how many of those are exactly zero.
    """

    layers: list[LayerSparsity]
    model_params: int = 0
    model_zeros: int = 0

    @property
    def prunable_params(self) -> int:
        return sum(l.params for l in self.layers)

    @property
    def sparsity(self) -> float:
        """Share of zeros among the prunable kernels' weights."""
        return sum(l.zeros for l in self.layers) / max(1, self.prunable_params)

    @property
    def covered_fraction(self) -> float:
        """Share of all the model's parameters that the prunable kernels hold."""
        return self.prunable_params / self.model_params if self.model_params else 0.0

    @property
    def model_sparsity(self) -> float:
        """Share of all the model's parameters that are zero."""
        return self.model_zeros / self.model_params if self.model_params else 0.0

    def __getitem__(self, name: str) -> LayerSparsity:
        return next(l for l in self.layers if l.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"sparsity": self.sparsity, "prunable_params": self.prunable_params,
                "model_params": self.model_params, "covered_fraction": self.covered_fraction,
                "model_zeros": self.model_zeros, "model_sparsity": self.model_sparsity,
                "layers": [dict(asdict(l), sparsity=l.sparsity) for l in self.layers]}

    def __str__(self) -> str:
        lines = [f"{'layer':<24} {'type':<16} {'params':>9} {'sparsity':>9}"]
        lines += [f"{l.name:<24} {l.type:<16} {l.params:>9} {l.sparsity:>8.1%}" for l in self.layers]
        lines.append(f"{'total':<24} {'':<16} {self.prunable_params:>9} {self.sparsity:>8.1%}")
        lines.append(f"These kernels hold {self.covered_fraction:.1%} of all {self.model_params} parameters of the "
                     f"model; the whole model is {self.model_sparsity:.1%} sparse.")
        return "\n".join(lines)


def sparsity_report(model: Any) -> SparsityReport:
    """Zeros in the kernels of every Dense/Conv/DepthwiseConv layer of `model`, and in all its weights.

    Example:

    ```python
    report = edgeopt.sparsity_report(model)
    print(report)   # per layer, total, and "These kernels hold 93.1% of all ... parameters"
    report.sparsity, report.covered_fraction, report.model_sparsity
    ```
    """
    layers = []
    for layer in iter_layers(model):
        kind = layer_type(layer)
        kernel = kernel_of(layer) if kind in WEIGHT_LAYER_TYPES else None
        if kernel is None:
            continue
        values = np.asarray(kernel.numpy())
        layers.append(LayerSparsity(layer.name, kind, int(values.size), int(np.count_nonzero(values == 0))))
    total = zeros = 0
    seen: set[int] = set()
    for weight in getattr(model, "weights", []):
        if id(weight) in seen:  # a weight shared by two layers is one parameter set
            continue
        seen.add(id(weight))
        values = np.asarray(weight.numpy())
        total += int(values.size)
        zeros += int(np.count_nonzero(values == 0))
    return SparsityReport(layers, model_params=total, model_zeros=zeros)
