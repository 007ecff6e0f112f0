"""Quantization-aware training of tf_keras models through tfmot.

tfmot's `quantize_annotate_layer` wraps the layer objects it is given, so everything
here works on a private copy of the caller's model. What tfmot cannot do is found
before or while it runs and reported as one `ConfigError` naming the layers: TensorFlow
ops applied to Keras tensors (TFOpLambda layers, which tfmot's own model copy breaks
on), integer inputs (tfmot fake-quantizes every model input), and layers its registry
does not support (Conv1D, LSTM, ...). No TypeError or AttributeError from deep inside
tfmot reaches the caller.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Sequence

from edgeopt import _keras
from edgeopt.errors import ConfigError
from edgeopt.qat import selection

_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")
# Unsupported in tfmot's registry but rewritten into supported layers by its transforms.
_TRANSFORMED = ("SeparableConv1D", "SeparableConv2D")
_UNSUPPORTED = re.compile(r"Layer ([^\s:]+):<class '[^']+'> is not supported")


def _is_input(layer) -> bool:
    return type(layer).__name__ == "InputLayer"


def _unsafe_scope():
    """Lets tf_keras copy Lambda layers of a model already in memory (its code is the caller's)."""
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    return SafeModeScope(False)


def _check_tfmot_can_copy(tfmot, model) -> None:
    """One error for everything that makes tfmot fail before it quantizes a single layer."""
    problems = []
    ops = [(l.name, type(l).__name__) for l in model.layers if type(l).__name__ in _OP_LAYERS]
    if ops:
        problems.append(f"TensorFlow ops applied to Keras tensors (tfmot's model copy breaks on them): {ops}")
    integers = [(t.name, t.dtype.name) for t in model.inputs if not (t.dtype.is_floating)]
    if integers:
        problems.append(f"integer inputs (tfmot fake-quantizes every model input): {integers}")
    if not problems:
        return
    registry = tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry()
    others = [(l.name, type(l).__name__) for l in model.layers
              if not _is_input(l) and type(l).__name__ not in _OP_LAYERS + _TRANSFORMED and not registry.supports(l)]
    if others:
        problems.append(f"layers tfmot does not support (skip= could leave these float): {others}")
    raise ConfigError(
        f"tfmot cannot quantize this tf_keras model: {'; '.join(problems)}. Received: model {model.name!r}. "
        "Replace the ops with Keras layers (layers.Add, layers.Multiply, layers.Rescaling...) and feed float "
        "inputs, or build the model with Keras 3: edgeopt's own QAT quantizes bare ops and leaves integer "
        "inputs alone.")


def quantize_aware_tf_keras(model: Any, *, layers: Sequence[str] | None, layer_types: Sequence[str] | None,
                            skip: Sequence[str] | bool | None, preserve: str | None) -> Any:
    tfmot = _keras.import_tfmot()
    tf_keras = _keras.keras_module(_keras.Flavour.TF_KERAS)
    if type(model).__name__ not in ("Sequential", "Functional") and not getattr(model, "_is_graph_network", False):
        raise ConfigError(
            "tfmot can only quantize Sequential or functional tf_keras models. "
            f"Received: a subclassed model of type {type(model).__name__}. Rebuild it with the functional API.")
    _check_tfmot_can_copy(tfmot, model)
    selection.check_selection([l.name for l in model.layers], [type(l).__name__ for l in model.layers],
                              layers=layers, layer_types=layer_types, skip=skip)
    try:
        with _unsafe_scope():
            clone = _keras.clone_with_weights(model)
    except Exception as exc:  # tf_keras raises many types for layers it cannot re-create
        raise ConfigError(f"tf_keras cannot copy the model for QAT. Received: {type(exc).__name__}: "
                          f"{_first_line(exc)}. Give custom layers a get_config, or rebuild the model.") from exc
    chosen = [l for l in clone.layers if not _is_input(l)
              and selection.is_selected(l.name, {type(l).__name__}, layers=layers, layer_types=layer_types)]
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
            with _unsafe_scope():
                return _apply(tfmot, tf_keras, clone, set(names), scheme, unsupported, model, skip)
        except ConfigError:
            raise
        except Exception as exc:  # tfmot raises RuntimeError, ValueError, TypeError, AttributeError...
            match = _UNSUPPORTED.search(str(exc))
            if not match or match.group(1) not in names:
                raise ConfigError(f"tfmot could not quantize the model. Received: {type(exc).__name__}: "
                                  f"{_first_line(exc)}. Pass layers=/layer_types= to quantize a supported part "
                                  "only, or build the model with Keras 3.") from exc
            unsupported.append(match.group(1))
            names.remove(match.group(1))
    raise ConfigError(f"No layer left to quantize. Received: layers={layers}, layer_types={layer_types}, "
                      f"skip={skip}; unsupported: {unsupported}. Select at least one supported layer.")


def _first_line(exc: Exception) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:300]


def _apply(tfmot, tf_keras, clone, names, scheme, unsupported, model, skip):
    def annotate(layer):
        return tfmot.quantization.keras.quantize_annotate_layer(layer) if layer.name in names else layer

    if unsupported:
        refused = selection.refused(sorted(unsupported), skip)
        if refused:
            kinds = {l.name: type(l).__name__ for l in clone.layers}
            raise ConfigError(
                f"tfmot cannot quantize these layers: {[(n, kinds.get(n)) for n in refused]}. Received: a tf_keras "
                f"model {model.name!r}. Pass skip={refused} (or skip=True) to leave them in float, or replace them "
                "with layers tfmot supports (Keras 3 QAT covers Conv1D).")
    annotated = tf_keras.models.clone_model(clone, clone_function=annotate)
    with tfmot.quantization.keras.quantize_scope():
        qat = (tfmot.quantization.keras.quantize_apply(annotated) if scheme is None
               else tfmot.quantization.keras.quantize_apply(annotated, scheme))
    if unsupported:
        warnings.warn(f"quantize_aware: left in float (tfmot cannot quantize them): {sorted(unsupported)}",
                      stacklevel=4)
    return qat
