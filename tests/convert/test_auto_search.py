"""The auto search's logic on a synthetic accuracy model (no converter): which op is raised,
the shrink pass, and the contiguity pass that joins an op to its neighbours' precision.

The per-op accuracy costs add up here, which real models do not promise; the search
never relies on it (every step is scored on the whole model), so additive costs are
simply a case whose best answer is known.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from edgeopt.convert.auto_precision import choose
from edgeopt.convert.mixed import Region


class _Quantizer:
    def __init__(self, weights):
        self.regions = [Region(i, f"op{i}", "FULLY_CONNECTED", w, [f"op{i};"], f"op{i}") for i, w in enumerate(weights)]
        self.float_model = b"{}"

    def quantize(self, choice):
        return json.dumps({str(k): str(v) for k, v in choice.items() if str(v) != "float32"}).encode()


class _Evaluate:
    """Accuracy drop = the sum of each op's cost at its level (float32 costs nothing)."""

    def __init__(self, costs):
        self.costs, self.evaluations, self.float_outputs = costs, 0, None
        self.eval_x = [np.zeros((4, 1))]

    def __call__(self, data):
        self.evaluations += 1
        levels = json.loads(data)
        drop = sum(self.costs[int(i)][level] for i, level in levels.items())
        return SimpleNamespace(accuracy=1 - drop / 100, accuracy_drop_points=drop), [np.ones(4)]

    def drop(self, validation):
        return validation.accuracy_drop_points


def _costs(int4, int8=0.05, int16x8=0.05):
    return [{"int4": c, "int8": int8, "int16x8": int16x8} for c in int4]


def _chosen(decision):
    return [c["precision"] for c in decision.choices]


def test_the_sensitive_op_alone_is_raised():
    decision = choose(_Quantizer([1000] * 5), _Evaluate(_costs([0.1, 3.0, 0.1, 0.1, 0.1])), 1.0)
    assert _chosen(decision) == ["int4", "int8", "int4", "int4", "int4"]
    assert decision.accuracy_drop_points <= 1.0 and decision.boundaries == 2
    assert "int4 alone costs 3.00 pts" in decision.choices[1]["reason"]


def test_the_whole_model_is_checked_not_the_single_op_costs():
    """Every op fits alone, the sum does not: the costliest ops are raised until it fits."""
    decision = choose(_Quantizer([1000] * 4), _Evaluate(_costs([0.4, 0.3, 0.5, 0.2])), 1.0)
    assert decision.accuracy_drop_points <= 1.0
    assert _chosen(decision)[2] == "int8"  # the most sensitive op moved first
    assert _chosen(decision).count("int4") >= 2


def test_a_small_op_between_raised_neighbours_joins_them():
    decision = choose(_Quantizer([1000, 1000, 10, 1000, 1000]), _Evaluate(_costs([0.1, 3.0, 0.1, 3.0, 0.1])), 1.0)
    assert _chosen(decision) == ["int4", "int8", "int8", "int8", "int4"]
    assert decision.boundaries == 2
    assert "joins its neighbours" in decision.choices[2]["reason"]


def test_int16x8_only_where_it_beats_int8_and_float_as_the_last_resort():
    costs = [{"int4": 5.0, "int8": 4.0, "int16x8": 0.2}, {"int4": 9.0, "int8": 9.0, "int16x8": 9.0}]
    decision = choose(_Quantizer([100, 100]), _Evaluate(costs), 1.0)
    assert _chosen(decision) == ["int16x8", "float32"]


def test_no_mix_fits_gives_the_float_model():
    costs = [{"int4": 5.0, "int8": 5.0, "int16x8": 5.0}]
    quantizer = _Quantizer([100])
    decision = choose(quantizer, _Evaluate(costs), 1.0)
    assert _chosen(decision) == ["float32"] and decision.data == quantizer.float_model
