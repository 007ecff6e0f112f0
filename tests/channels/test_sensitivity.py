"""channel_sensitivity on a trained digits CNN, its table, JSON, plot, and the ratio chooser."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edgeopt import ConfigError, channel_sensitivity, prune_channels
from edgeopt.channels import model_cost
from tests.conftest import FLAVOURS


@pytest.fixture(scope="module")
def sensitivity(trained, digits):
    """flavour -> SensitivityResult of the session's trained digits CNN, computed once."""
    cache = {}

    def get(flavour):
        if flavour not in cache:
            cache[flavour] = channel_sensitivity(trained(flavour), (digits.x_test, digits.y_test))
        return cache[flavour]

    return get


def _accuracy(model, digits):
    return float(np.mean(model.predict(digits.x_test, verbose=0).argmax(1) == digits.y_test))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_each_group_alone_at_each_ratio(sensitivity, trained, digits, flavour):
    result = sensitivity(flavour)
    model = trained(flavour)
    assert [(r["group"], r["ratio"]) for r in result.rows] == [
        (g, r) for g in ("conv1", "conv2", "dense1") for r in (0.25, 0.5, 0.75)]  # logits feeds the output
    assert result.baseline == pytest.approx(_accuracy(model, digits)) and result.baseline > 0.9
    row = next(r for r in result.rows if r["group"] == "conv2" and r["ratio"] == 0.75)
    pruned = prune_channels(model, {"conv2": 0.75})
    assert row["accuracy"] == pytest.approx(_accuracy(pruned, digits))
    assert row["drop"] == pytest.approx(result.baseline - row["accuracy"])
    assert row["kept"] == 4 and row["channels"] == 16
    assert row["params"] == pruned.count_params() == model_cost(pruned).params
    assert row["macs"] == model_cost(pruned).macs < result.macs
    assert max(r["drop"] for r in result.rows) > 0.01  # pruning costs accuracy somewhere


def test_table_json_and_plot(sensitivity, tmp_path):
    result = sensitivity("keras3")
    rows = result.to_rows()
    assert len(rows) == 9 and set(rows[0]) >= {"group", "ratio", "kept", "accuracy", "drop", "params", "macs"}
    rows[0]["drop"] = 99.0
    assert result.rows[0]["drop"] != 99.0  # to_rows returns copies
    data = json.loads(json.dumps(result.to_dict()))
    assert data["metric"] == "accuracy" and data["criterion"] == "l1" and len(data["rows"]) == 9
    path = result.plot(tmp_path / "sensitivity.png")
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 5000


def test_choose_ratios_is_greedy_on_the_drops(sensitivity):
    result = dataclasses.replace(sensitivity("keras3"), rows=sensitivity("keras3").to_rows())  # a copy to edit
    for row in result.rows:  # pretend: dense1 costs nothing, conv2 a lot, conv1 a little
        row["drop"] = {"dense1": 0.0, "conv2": 0.5, "conv1": 0.01}[row["group"]] * row["ratio"]
    ratios = result.choose_ratios(0.3, by="params")
    assert ratios == {"dense1": 0.5}  # dense1 (90 % of the weights) goes first: 0.25 saves 24 %, 0.5 saves 47 %
    assert result.choose_ratios(0.6, by="params") == {"dense1": 0.75}  # then all the way before conv1
    for by in ("params", "macs"):
        for target in (0.2, 0.5):
            ratios = result.choose_ratios(target, by=by)
            small = prune_channels(result._pruner.graph.model, ratios)
            after, before = getattr(model_cost(small), by), getattr(result, by)
            assert after <= (1 - target) * before
    with pytest.warns(UserWarning, match="short of target=0.99"):
        result.choose_ratios(0.99, by="macs")


@pytest.mark.parametrize("kwargs, message", [
    (dict(ratios=[]), "ratios must be a non-empty list"), (dict(ratios=[0.5, 1.5]), r"ratios\[i\] must be"),
    (dict(ratios="0.5"), "ratios must be"), (dict(criterion="l3"), "Unknown criterion"),
    (dict(round_to=0), "round_to must be a positive integer"),
])
def test_bad_arguments(trained, digits, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        channel_sensitivity(trained("keras3"), (digits.x_test, digits.y_test), **kwargs)


def test_bad_eval_data_and_targets(sensitivity, trained, digits):
    with pytest.raises(ConfigError, match=r"eval_data must be a pair \(x, y\)"):
        channel_sensitivity(trained("keras3"), digits.x_test)
    result = sensitivity("keras3")
    with pytest.raises(ConfigError, match="target must be a number in"):
        result.choose_ratios(1.2)
    with pytest.raises(ConfigError, match="by must be 'params' or 'macs'"):
        result.choose_ratios(0.5, by="flops")


def test_eval_data_that_does_not_fit_is_a_config_error(trained, digits):
    with pytest.raises(ConfigError, match="eval_data does not fit the model"):
        channel_sensitivity(trained("keras3"), (digits.x_test[:, :4], digits.y_test))
