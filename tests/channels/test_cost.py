"""model_cost: parameters and MACs counted by hand, and the planned cost of a prune."""

from __future__ import annotations

import pytest

from edgeopt._keras import keras_module
from edgeopt.channels import model_cost
from edgeopt.channels.cost import graph_cost
from edgeopt.channels.prune import ChannelPruner
from tests.channels.models import PATTERNS, build
from tests.conftest import FLAVOURS


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_hand_counted_params_and_macs(flavour):
    k = keras_module(flavour)
    inputs = k.Input((8, 8, 3))
    x = k.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)  # 8*8 positions * 3*3*3 * 4
    x = k.layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(x)  # 4*4 * 3*3 * 4
    x = k.layers.SeparableConv2D(6, 3, padding="same", depth_multiplier=2, name="sep")(x)  # 4*4 * (9*4*2 + 8*6)
    x = k.layers.Conv1D(5, 2, name="c1d")(k.layers.Reshape((16, 6))(x))  # 15 * 2*6 * 5
    x = k.layers.Flatten()(x)
    model = k.Model(inputs, k.layers.Dense(10, name="fc")(x))  # 75 * 10
    cost = model_cost(model)
    macs = {"conv": 64 * 27 * 4, "dw": 16 * 9 * 4, "sep": 16 * (72 + 48), "c1d": 15 * 12 * 5, "fc": 750}
    assert {n: cost.layers[n]["macs"] for n in macs} == macs
    assert cost.macs == sum(macs.values())
    assert cost.params == model.count_params()
    assert cost.layers["sep"]["params"] == 9 * 4 * 2 + 8 * 6 + 6


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_planned_cost_equals_the_built_model(flavour, pattern):
    model = build(pattern, flavour)
    pruner = ChannelPruner(model)
    assert graph_cost(pruner.graph).params == model.count_params()
    keep = pruner.keep(pruner.group_ratios(0.6))
    planned = graph_cost(pruner.graph, {i: len(kept) for i, kept in keep.items()})
    actual = model_cost(pruner.build(keep))
    assert (planned.params, planned.macs) == (actual.params, actual.macs)
    assert actual.macs < model_cost(model).macs
