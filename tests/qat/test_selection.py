"""QAT's layer selection and "is this a QAT model" are decided once, for both Keras
backends (`edgeopt.qat.selection`, `edgeopt.qat.api.is_quantization_aware`)."""

from __future__ import annotations

from pathlib import Path

import pytest

import edgeopt.qat
from edgeopt import ConfigError
from edgeopt.qat import selection
from edgeopt.qat.api import is_quantization_aware, quantize_aware

NAMES, TYPES = ["input", "conv", "dense_1", "dense"], ["InputLayer", "Conv2D", "Dense"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(layers=["nope", "conv"]), r"^No such layers to quantize\. Received: layers=\['nope'\]\. "
                                   r"Layers in the model: \['conv', 'dense', 'dense_1', 'input'\]\.$"),
    (dict(skip=("nope", "dense")), r"^No such layers to skip\. Received: skip=\['nope'\]\."),
    (dict(layer_types=["Dens"]), r"^No layers of these types to quantize\. Received: layer_types=\['Dens'\]\. "
                                 r"Types in the model: \['Conv2D', 'Dense', 'InputLayer'\]\.$"),
])
def test_a_selection_the_model_lacks_is_one_error(kwargs, message):
    arguments = {"layers": None, "layer_types": None, "skip": None, **kwargs}
    with pytest.raises(ConfigError, match=message):
        selection.check_selection(NAMES, TYPES, **arguments)


def test_a_selection_the_model_has_passes():
    selection.check_selection(NAMES, TYPES, layers=["conv"], layer_types=["Dense"], skip=True)
    selection.check_selection(NAMES, TYPES, layers=None, layer_types=None, skip=["dense"])


def test_layers_and_layer_types_both_select():
    assert selection.is_selected("conv", {"Conv2D"}, layers=None, layer_types=None)
    assert selection.is_selected("conv", {"Conv2D", "op:conv"}, layers=["conv"], layer_types=["Conv2D"])
    assert not selection.is_selected("conv", {"Conv2D"}, layers=["dense"], layer_types=None)
    assert not selection.is_selected("conv", {"Conv2D"}, layers=None, layer_types=["Dense"])


def test_unsupported_layers_are_refused_unless_skipped():
    assert selection.refused(["b", "a", "b"], None) == ["b", "a"]  # their order, once each
    assert selection.refused(["b", "a"], ["a"]) == ["b"]
    assert selection.refused(["b", "a"], True) == []
    assert selection.skip_names(True) == set() and selection.skip_names(("a",)) == {"a"}


def test_the_selection_rules_live_in_one_module():
    package = Path(edgeopt.qat.__file__).parent
    for phrase in ("No such layers to", "No layers of these types"):
        holders = sorted(p.name for p in package.glob("*.py") if phrase in p.read_text())
        assert holders == ["selection.py"], phrase


def test_both_backends_say_the_same_for_a_missing_layer(keras3_model, tf_keras_model):
    messages = []
    for model in (keras3_model, tf_keras_model):
        with pytest.raises(ConfigError) as caught:
            quantize_aware(model, skip=["nope"])
        messages.append(str(caught.value).split(" Layers in the model:")[0])
    assert messages == ["No such layers to skip. Received: skip=['nope']."] * 2


def test_quantization_aware_models_are_told_apart(keras3_model):
    assert not is_quantization_aware(keras3_model)
    assert is_quantization_aware(quantize_aware(keras3_model))


@pytest.mark.slow
@pytest.mark.parametrize("flavour, suffix", [("keras3", ".keras"), ("tf_keras", ".h5")])
def test_a_saved_qat_model_is_told_apart_and_loads_back(trained, tmp_path, flavour, suffix):
    from edgeopt._keras import load_model
    from edgeopt.pipeline.run import _save

    model = trained(flavour)
    assert not is_quantization_aware(model)
    qat = quantize_aware(model)
    assert is_quantization_aware(qat)
    path = _save(qat, tmp_path)  # a tfmot QAT model goes to .h5: its .keras files do not load back
    assert path.name == f"model{suffix}"
    assert is_quantization_aware(load_model(path))
