"""The `channel_pruning` recipe step: prune whole channels, fine-tune (by distillation from
the unpruned model unless `distill: false`), in one or more rounds; smaller TFLite shapes."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import edgeopt
from edgeopt import ConfigError
from edgeopt.pipeline.recipe import parse_recipe
from edgeopt.pipeline.run import run_recipe
from edgeopt.pipeline.steps import STEPS
from edgeopt.channels.prune import round_ratios

RECIPE = """
name: channels
model: {builder: edgeopt.models:digits_cnn, kwargs: {width: 8}}
data: {source: digits}
train: {epochs: 2, batch_size: 64}
variants:
  - name: baseline
  - name: half
    steps:
      - channel_pruning: {ratio: 0.5, epochs: 1}
  - name: iterative
    steps:
      - channel_pruning: {ratio: {"conv*": 0.5}, criterion: l2, iterations: 2, epochs: 1, distill: false}
export: {precisions: [float32], calibration_samples: 20}
"""


@pytest.fixture(scope="module")
def channel_run(tmp_path_factory):
    """One run, shared by the module (read it, never change it); Distiller calls are counted."""
    calls = []
    real = edgeopt.Distiller

    def counting(*args, **kwargs):  # the real Distiller, counted: is distillation wired?
        calls.append(kwargs)
        return real(*args, **kwargs)

    root = tmp_path_factory.mktemp("channels")
    recipe = root / "channels.yaml"
    recipe.write_text(RECIPE)
    patch = pytest.MonkeyPatch()
    patch.setattr(edgeopt, "Distiller", counting)
    lines: list[str] = []
    try:
        result = run_recipe(recipe, out_dir=root / "out", progress=lines.append)
    finally:
        patch.undo()
    return result, calls, lines


@pytest.mark.slow
def test_channel_pruning_makes_smaller_tflite_shapes(channel_run):
    result, _, _ = channel_run
    assert result.ok, result.failed
    stages = json.loads((result.run_dir / "manifest.json").read_text())["stages"]
    filters, params = {}, {}
    for variant in ("baseline", "half", "iterative"):
        info = edgeopt.inspect_tflite(result.run_dir / variant / "model.float32.tflite")
        # conv kernels are stored [out, h, w, in]: their first dimensions are the filter counts
        filters[variant] = sorted(p.shape[0] for p in info.parameters if len(p.shape) == 4)
        stage = "train" if variant == "baseline" else f"variant:{variant}"  # the baseline is a copy
        params[variant] = stages[stage]["info"]["params"]
    assert filters["baseline"] == [8, 16] and filters["half"] == [4, 8] and filters["iterative"] == [4, 8]
    assert params["half"] < 0.6 * params["baseline"] and params["iterative"] < params["baseline"]
    rows = {r["variant"]: r for r in json.loads((result.run_dir / "report.json").read_text())}
    assert rows["half"]["size_bytes"] < 0.5 * rows["baseline"]["size_bytes"]


@pytest.mark.slow
def test_fine_tuning_distills_from_the_unpruned_model_by_default(channel_run):
    result, calls, lines = channel_run
    assert len(calls) == 1  # `half` distils; `iterative` has distill: false
    assert calls[0]["teacher"].count_params() > calls[0]["student"].count_params()
    assert sum("round 1/2" in line or "round 2/2" in line for line in lines) == 2
    assert any("channel_pruning: round 1/1" in line for line in lines)


def _recipe(step: dict) -> dict:
    data = yaml.safe_load(RECIPE)
    data["variants"] = [{"name": "v", "steps": [{"channel_pruning": step}]}]
    return data


def test_channel_step_keys_and_defaults_come_from_prune_channels():
    keys = STEPS["channel_pruning"].keys()
    assert {"ratio", "criterion", "round_to", "batch_size", "iterations", "distill", "epochs"} <= keys
    assert "data" not in keys and "return_plan" not in keys
    parsed = parse_recipe(_recipe({"ratio": 0.3})).variants[0]["steps"][0]["channel_pruning"]
    assert parsed["iterations"] == 1 and parsed["distill"] is True


@pytest.mark.parametrize("step, message", [
    ({}, "ratio is required"),
    ({"ratio": 1.5}, "ratio"),
    ({"ratio": 0.5, "criterion": "random"}, "criterion"),
    ({"ratio": 0.5, "iterations": 0}, "iterations"),
    ({"ratio": 0.5, "distill": "yes"}, "distill must be true or false"),
    ({"ratio": 0.5, "round_to": 0}, "round_to"),
    ({"ratio": 0.5, "filters": 3}, "filters"),
])
def test_bad_channel_steps_are_refused_when_the_recipe_loads(step, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_recipe(_recipe(step))
    assert "channel_pruning" in str(caught.value) and "\n" not in str(caught.value)


@given(st.floats(0.0, 0.9), st.integers(1, 4), st.sampled_from([1, 2, 4]))
@settings(max_examples=25, deadline=None)
def test_rounds_end_at_the_one_shot_channel_counts(small_model, ratio, iterations, round_to):
    """Successive rounds remove an equal share of what is left and land exactly on the
    counts one prune at `ratio` keeps (checked with the real prune, round by round)."""
    one_shot = edgeopt.prune_channels(small_model, ratio, round_to=round_to)
    current = small_model
    for share in round_ratios(small_model, ratio, iterations, round_to=round_to):
        assert all(0.0 <= r < 1.0 for r in share.values())
        current = edgeopt.prune_channels(current, share, round_to=round_to)
    assert _widths(current) == _widths(one_shot)


def _widths(model) -> list[int]:
    return [layer.get_config().get("filters") or layer.get_config().get("units") for layer in model.layers
            if "filters" in layer.get_config() or "units" in layer.get_config()]


@pytest.fixture(scope="module")
def small_model():
    return edgeopt.models.digits_cnn(width=8)
