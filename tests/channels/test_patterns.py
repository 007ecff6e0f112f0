"""One test per channel-dependency pattern, in both Keras flavours.

Each pruned model (before any fine-tuning) must compute what the original computes
with the removed channels zeroed, keep its input and output shapes, and convert to a
TFLite file whose weight tensors are smaller.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeopt import export_tflite, inspect_tflite, prune_channels
from tests.channels.models import build, sample, zeroed
from tests.conftest import FLAVOURS

# pattern -> {layer: filters/units after prune_channels(model, 0.5)}, and groups that share one mask
EXPECTED = {
    "conv_chain": ({"c1": 4, "c2": 4, "logits": 4}, []),
    "residual_add": ({"stem": 4, "project": 4, "expand": 4, "head": 3}, [["stem", "project"]]),
    "multiply": ({"value": 4, "gate": 4, "head": 3}, [["value", "gate"]]),
    "concatenate": ({"left": 3, "right": 2, "mix": 4}, []),
    "depthwise": ({"stem": 4, "pw": 4}, []),
    "separable": ({"stem": 4, "sep1": 5, "sep2": 3}, []),
    "squeeze_excite": ({"stem": 4, "se_expand": 4, "se_reduce": 2, "head": 3}, [["stem", "se_expand"]]),
    "flatten_dense": ({"conv": 4, "fc": 8}, []),
    "pooled_dense": ({"conv": 4, "fc": 8}, []),
    "conv1d": ({"c1": 4, "c2": 4}, []),
    "sequential": ({"c1": 4, "c2": 4, "fc": 6}, []),
}


def _width(layer):
    config = layer.get_config()
    return config.get("filters", config.get("units"))


def _float_params(path):
    return sum(math.prod(p.shape) for p in inspect_tflite(path).parameters if p.dtype == "float32")


@pytest.fixture(scope="module")
def pruned():
    """(flavour, pattern) -> (original, pruned, plan, original weights), built once per module."""
    cache = {}

    def get(flavour, pattern):
        if (flavour, pattern) not in cache:
            model = build(pattern, flavour)
            before = [w.copy() for w in model.get_weights()]
            new, plan = prune_channels(model, 0.5, return_plan=True)
            cache[flavour, pattern] = (model, new, plan, before)
        return cache[flavour, pattern]

    return get


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("pattern", sorted(EXPECTED))
def test_pruned_model_equals_original_with_channels_zeroed(pruned, flavour, pattern):
    model, new, plan, before = pruned(flavour, pattern)
    widths, shared = EXPECTED[pattern]
    for name, width in widths.items():
        original = _width(model.get_layer(name))
        expected = original if name == "logits" else width  # feeding the model output: never pruned
        assert _width(new.get_layer(name)) == expected, name
    for names in shared:
        (group,) = [g for g in plan.groups if names[0] in g.producers]
        assert sorted(group.producers) == sorted(names)
    assert new.count_params() < model.count_params()
    assert [l.name for l in new.layers] == [l.name for l in model.layers]
    x = sample(model)
    out, reference = new.predict(x, verbose=0), zeroed(model, plan).predict(x, verbose=0)
    assert out.shape == model.predict(x, verbose=0).shape
    np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-5)
    assert np.abs(reference - model.predict(x, verbose=0)).max() > 1e-3  # the channels did matter
    for old, now in zip(before, model.get_weights()):  # the input model is untouched
        np.testing.assert_array_equal(old, now)


@pytest.mark.slow
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("pattern", sorted(EXPECTED))
def test_pruned_model_converts_with_smaller_tensors(pruned, tmp_path, flavour, pattern):
    model, new, plan, _ = pruned(flavour, pattern)
    x = sample(model)
    small = export_tflite(new, ["float32"], output_dir=tmp_path / "pruned", eval_data=x)["float32"]
    assert small.status == "ok", small.error
    assert small.validation["max_abs_error"] < 1e-4  # LiteRT computes what the pruned Keras model does
    info = inspect_tflite(small.path)
    assert info.inputs[0].shape[1:] == list(model.inputs[0].shape[1:])
    assert info.outputs[0].shape[1:] == list(model.outputs[0].shape[1:])
    if flavour == "keras3":  # the dense model once, for the sizes
        dense = export_tflite(model, ["float32"], output_dir=tmp_path / "dense")["float32"]
        assert _float_params(small.path) < 0.75 * _float_params(dense.path)
    shapes = [p.shape for p in info.parameters]
    widths, _ = EXPECTED[pattern]
    first = next(n for n in widths if n != "logits")
    assert any(s[0] == widths[first] and len(s) >= 3 for s in shapes), shapes  # [out, ..., in] conv filters
