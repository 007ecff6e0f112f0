"""Quantization-aware training of tf_keras models through tfmot.

tfmot's `quantize_annotate_layer` wraps the layer objects it is given, so everything
here works on a private copy of the caller's model. Layers tfmot cannot quantize are
found before tfmot runs, so the user gets one clear error instead of a stack trace
from deep inside tfmot.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Sequence

from edgeopt import _keras
from edgeopt.errors import ConfigError


def _is_input(layer) -> bool:
    return type(layer).__name__ == "InputLayer"


def quantize_aware_tf_keras(model: Any, *, layers: Sequence[str] | None, layer_types: Sequence[str] | None,
                            skip: Sequence[str] | bool | None, preserve: str | None) -> Any:
    tfmot = _keras.import_tfmot()
    tf_keras = _keras.keras_module(_keras.Flavour.TF_KERAS)
    if type(model).__name__ not in ("Sequential", "Functional") and not getattr(model, "_is_graph_network", False):
        raise ConfigError(
            "tfmot can only quantize Sequential or functional tf_keras models. "
            f"Received: a subclassed model of type {type(model).__name__}. Rebuild it with the functional API.")
    clone = _keras.clone_with_weights(model)
    chosen = []
    for layer in clone.layers:
        if _is_input(layer):
            continue
        if layers is not None and layer.name not in layers:
            continue
        if layer_types is not None and type(layer).__name__ not in layer_types:
            continue
        chosen.append(layer)
    if layers is not None:
        missing = sorted(set(layers) - {l.name for l in clone.layers})
        if missing:
            raise ConfigError(f"No such layers to quantize. Received: layers={missing}. "
                              f"Layers in the model: {[l.name for l in clone.layers]}.")
    scheme = None
    if preserve == "sparsity":
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    elif preserve == "clusters":
        scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    names = [l.name for l in chosen]
    unsupported: list[str] = []
    # tfmot decides support only after its Conv-BN-ReLU folding transforms, so ask tfmot
    # itself: each failure names one layer; collect them all for one clear message.
    while names:
        try:
            return _apply(tfmot, tf_keras, clone, set(names), scheme, unsupported, model, skip)
        except (RuntimeError, ValueError) as exc:
            match = _UNSUPPORTED.search(str(exc))
            if not match or match.group(1) not in names:
                raise ConfigError(f"tfmot could not quantize the model. Received: {str(exc).splitlines()[0][:300]}. "
                                  "Pass layers=/layer_types= to quantize a supported part only.") from exc
            unsupported.append(match.group(1))
            names.remove(match.group(1))
    raise ConfigError(f"No layer left to quantize. Received: layers={layers}, layer_types={layer_types}, "
                      f"skip={skip}; unsupported: {unsupported}. Select at least one supported layer.")


_UNSUPPORTED = re.compile(r"Layer ([^\s:]+):<class '[^']+'> is not supported")


def _apply(tfmot, tf_keras, clone, names, scheme, unsupported, model, skip):
    def annotate(layer):
        return tfmot.quantization.keras.quantize_annotate_layer(layer) if layer.name in names else layer

    annotated = tf_keras.models.clone_model(clone, clone_function=annotate)
    with tfmot.quantization.keras.quantize_scope():
        qat = (tfmot.quantization.keras.quantize_apply(annotated) if scheme is None
               else tfmot.quantization.keras.quantize_apply(annotated, scheme))
    if unsupported:
        allowed = set(skip) if isinstance(skip, (list, tuple, set)) else set()
        refused = sorted(set(unsupported) - allowed)
        if skip is not True and refused:
            kinds = {l.name: type(l).__name__ for l in clone.layers}
            raise ConfigError(
                f"tfmot cannot quantize these layers: {[(n, kinds.get(n)) for n in refused]}. Received: a tf_keras "
                f"model {model.name!r}. Pass skip={refused} (or skip=True) to leave them in float, or replace them "
                "with supported layers.")
        warnings.warn(f"quantize_aware: left in float (tfmot cannot quantize them): {sorted(unsupported)}",
                      stacklevel=4)
    return qat
