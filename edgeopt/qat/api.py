"""`quantize_aware`: a trainable quantization-aware copy of a Keras model."""

from __future__ import annotations

from typing import Any, Sequence

from edgeopt import _keras
from edgeopt.errors import ConfigError

PRESERVE = (None, "sparsity", "clusters")
# Class-name prefixes of the layers that carry learned quantization ranges, by Keras:
# edgeopt's own (FakeQuantDense, FakeQuantActivation, ...) and tfmot's (QuantizeWrapper,
# QuantizeWrapperV2, QuantizeLayer). The one place that says what a QAT model is.
QAT_LAYER_PREFIXES = {_keras.Flavour.KERAS3: ("FakeQuant",), _keras.Flavour.TF_KERAS: ("QuantizeWrapper", "QuantizeLayer")}


def is_quantization_aware(model: Any) -> bool:
    """Whether `model` (Keras 3 or tf_keras) has layers with learned quantization ranges,
    nested models included: its int8 export takes those ranges, not calibration data."""
    from edgeopt._layers import iter_layers

    prefixes = tuple(p for group in QAT_LAYER_PREFIXES.values() for p in group)
    return any(type(layer).__name__.startswith(prefixes) for layer in iter_layers(model))


def _check_names(what: str, value: Any, *, allow_bool: bool = False) -> None:
    """`value` is None, a list of strings, or (with `allow_bool`) a bool."""
    if value is None or (allow_bool and isinstance(value, bool)):
        return
    if isinstance(value, (list, tuple, set)) and all(isinstance(v, str) for v in value):
        return
    if isinstance(value, str):
        fix = f"Pass a list: {what}=[{value!r}]."
    else:
        fix = "Pass a list of strings" + (" or True." if allow_bool else ".")
    raise ConfigError(f"{what} must be a list of layer {'class names' if what == 'layer_types' else 'names'}. "
                      f"Received: {what}={value!r}. {fix}")


def check_qat_arguments(layers: Any, layer_types: Any, skip: Any, preserve: Any) -> None:
    """`quantize_aware`'s checks that need no model (recipes validate steps with them).

    Raises:
        ConfigError: naming the argument and its value.
    """
    if preserve not in PRESERVE:
        raise ConfigError(f"Unknown preserve mode. Received: preserve={preserve!r}. Use None, 'sparsity' or 'clusters'.")
    _check_names("layers", layers)
    _check_names("layer_types", layer_types)
    _check_names("skip", skip, allow_bool=True)


def quantize_aware(model: Any, *, layers: Sequence[str] | None = None, layer_types: Sequence[str] | None = None,
                   skip: Sequence[str] | bool | None = None, preserve: str | None = None) -> Any:
    """Returns a quantization-aware copy of `model` to compile and `fit`; `model` is untouched.

    The copy keeps the model's inputs, outputs and output names. Layers it leaves in
    float (skipped, not selected) read dequantized inputs in the int8 export, which then
    lists their ops among its `float_ops`.

    Example:

    ```python
    qat = edgeopt.quantize_aware(model, preserve="sparsity")   # keeps a pruned model's zeros
    qat.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    qat.fit(x, y, epochs=2)
    edgeopt.export_tflite(qat, ["int8"], output_dir="out", eval_data=(x_test, y_test))
    ```

    Args:
        model: a functional or Sequential model: tf_keras models go through tfmot,
            Keras 3 models (TensorFlow backend) through edgeopt's own QAT.
        layers: names of the layers to quantize; the others stay float. Defaults to
            `None` (all).
        layer_types: class names of the layers to quantize (e.g. `["Conv2D", "Dense"]`).
            Defaults to `None` (all).
        skip: names of layers to leave in float (e.g. ones TFLite has no int8 kernel
            for), or `True` for every layer that cannot be quantized (with a warning).
            Defaults to `None`: such layers are an error naming them.
        preserve: `"sparsity"` (pruning-preserving QAT: zeros stay zero) or `"clusters"`
            (cluster-preserving QAT, tf_keras only). Defaults to `None`.

    Raises:
        ConfigError: an argument is wrong, or a layer cannot be quantized (the message
            names them all and how to skip them).
    """
    check_qat_arguments(layers, layer_types, skip, preserve)
    flavour = _keras.flavour_of(model)
    if flavour is _keras.Flavour.KERAS3:
        _keras.keras_module(flavour)  # a clear error for a non-TensorFlow backend
        from edgeopt.qat.keras3 import quantize_aware_keras3

        return quantize_aware_keras3(model, layers=layers, layer_types=layer_types, skip=skip, preserve=preserve)
    from edgeopt.qat.tfmot_backend import quantize_aware_tf_keras

    return quantize_aware_tf_keras(model, layers=layers, layer_types=layer_types, skip=skip, preserve=preserve)
