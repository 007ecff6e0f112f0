"""A recipe's `search:` section is checked like every other section, by the same
constructors the Python API uses, with their defaults; errors name file and key."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from edgeopt import ConfigError
from edgeopt.pipeline.recipe import load_recipe, parse_recipe
from edgeopt.search.budget import Budget
from edgeopt.search.settings import SearchSettings, section_keys
from edgeopt.search.space import DIMENSIONS, SearchSpace

BASE = {
    "name": "t",
    "model": {"builder": "edgeopt.models:digits_cnn", "kwargs": {"width": 4}},
    "data": {"source": "digits"},
    "train": {"epochs": 1},
    "search": {"space": {"sparsity": [0.0, 0.5], "precision": ["float32"]}},
}
ROOT = Path(__file__).resolve().parents[2]


def parse(search, tmp_path=None, **sections):
    data = {**BASE, **sections, "search": search}
    if tmp_path is None:
        return parse_recipe(data, path="r.yaml", check_devices=False)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_recipe(path)


def test_shipped_search_recipe_loads():
    recipe = load_recipe(ROOT / "recipes" / "digits_search.yaml")
    assert recipe.search["budget"]["max_accuracy_drop"] == 1.0
    assert {"student", "sparsity", "clusters", "precision"} <= set(recipe.search["space"])
    assert recipe.search["device"] == "local" and recipe.bench and recipe.export


@pytest.mark.parametrize("search, message", [
    ({"spaces": {}}, r"Unknown key in .*r\.yaml: search\. Received: spaces\. Allowed: budget, device"),
    ({"budget": {"max_size": 10}}, r"Unknown key in .*r\.yaml: search\.budget\. Received: max_size\. Allowed: "
                                   r"max_accuracy_drop, max_latency_ms, max_size_kb, size"),
    ({"space": {"pruning": [0.5]}}, r"Unknown key in .*r\.yaml: search\.space\. Received: pruning\. Allowed: channel_ratio, clusters"),
])
def test_unknown_keys_name_file_and_key(tmp_path, search, message):
    with pytest.raises(ConfigError, match=message):
        parse(search, tmp_path)


@pytest.mark.parametrize("search, message", [
    ({"budget": {"max_accuracy_drop": "1"}}, r"search\.budget\.max_accuracy_drop must be a number >= 0.*"
                                             r"Received: max_accuracy_drop='1'"),
    ({"budget": {"max_latency_ms": 0}}, r"search\.budget\.max_latency_ms must be a number > 0"),
    ({"budget": {"max_size_kb": True}}, r"search\.budget\.max_size_kb must be a number > 0"),
    ({"budget": {"max_size_kb": float("nan")}}, r"search\.budget\.max_size_kb must be"),
    ({"budget": {"size": "zip"}}, r"search\.budget\.size must be gzip or raw\. Received: size='zip'"),
    ({"budget": [1]}, r"search\.budget must be a mapping"),
    ({"space": {"sparsity": 1.0}}, r"search\.space\.sparsity values must be fractions from 0 to below 1"),
    ({"space": {"sparsity": {"low": 0.5, "high": 0.1}}}, r"search\.space\.sparsity needs numbers low <= high"),
    ({"space": {"sparsity": {"low": 0.0, "high": 0.5, "step": -1}}}, r"search\.space\.sparsity\.step must be"),
    ({"space": {"sparsity": {"low": 0, "hi": 1}}}, r"search\.space\.sparsity must be a list of values or"),
    ({"space": {"sparsity": []}}, r"search\.space\.sparsity must list at least one value"),
    ({"space": {"sparsity": [0.1, 0.1]}}, r"search\.space\.sparsity lists a value twice"),
    ({"space": {"clusters": [1]}}, r"search\.space\.clusters values must be 0 \(no clustering\) or integers >= 2"),
    ({"space": {"clusters": [8.5]}}, r"search\.space\.clusters values must be"),
    ({"space": {"clusters": [2], "sparsity": [0.5]}}, r"2 clusters cannot keep pruned zeros"),
    ({"space": {"precision": ["float64"]}}, r"search\.space\.precision: Unknown precision"),
    ({"space": {"precision": {"low": 1, "high": 2}}}, r"search\.space\.precision must be a list of values\."),
    ({"space": {"student": {"widht": [4, 8]}}}, r"search\.space\.student: the builder takes no argument 'widht'"),
    ({"space": {"student": {"width": [[4]]}}}, r"search\.space\.student\.width values must be numbers"),
    ({"space": {"student": [4]}}, r"search\.space\.student must map builder kwargs"),
    ({"space": {"layer_sparsity": {"dense*": 0.5}}}, r"layer_sparsity keys must be layer names"),
    ({"space": {}}, r"r\.yaml: search\.space must map dimensions to values"),
    ({"sampler": "cmaes"}, r"search: Unknown sampler\. Received: sampler='cmaes'\. Use one of: tpe, nsga2, random"),
    ({"sampler": ["tpe"]}, r"Unknown sampler"),
    ({"epochs": 0}, r"search\.epochs must be an integer >= 1\. Received: epochs=0"),
    ({"distill_epochs": 2.5}, r"search\.distill_epochs must be an integer >= 1"),
    ({"startup_trials": "8"}, r"search\.startup_trials must be an integer >= 1"),
    ({"stop_margin": -1}, r"search\.stop_margin must be a number of accuracy points >= 0, or null"),
    ({"seed": -3}, r"search\.seed must be an integer"),
    ({"device": 7}, r"search\.device must be a device profile name"),
    ("fast", r"r\.yaml: search must be a mapping"),
])
def test_bad_values_fail_when_the_recipe_loads(search, message):
    with pytest.raises(ConfigError, match=message):
        parse(search)


def test_unknown_device_fails_when_the_recipe_loads(tmp_path):
    with pytest.raises(ConfigError, match=r"r\.yaml: search\.device: No such device profile\. Received: 'pixel42'"):
        parse({"device": "pixel42"}, tmp_path)


def test_search_needs_train_and_data():
    with pytest.raises(ConfigError, match=r"search fine-tunes and validates every trial"):
        parse_recipe({k: v for k, v in BASE.items() if k != "train"}, path="r.yaml", check_devices=False)


def test_student_needs_a_builder(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"search\.space\.student sets builder kwargs, so the recipe's model needs"):
        parse({"space": {"student": {"width": [4]}}}, model={"path": str(model)})


def test_defaults_are_the_constructors():
    parsed = parse({}).search
    parameters = inspect.signature(SearchSettings).parameters
    assert set(parsed) == set(section_keys()) == set(parameters)
    for key in ("device", "sampler", "startup_trials", "epochs", "distill_epochs", "stop_margin", "seed"):
        assert parsed[key] == parameters[key].default, key
    assert parsed["budget"] == Budget().to_dict()
    assert parsed["space"] == SearchSpace().to_dict()  # the default space
    assert set(SearchSpace().to_dict()) <= set(DIMENSIONS)


def test_the_parsed_section_constructs_the_same_settings():
    search = {"space": {"sparsity": {"low": 0.0, "high": 0.9, "step": 0.1}, "clusters": [0, 8],
                        "layer_sparsity": {"dense1": [0.5, 0.9]}, "student": {"width": [4, 8]},
                        "precision": ["int8", "float16"]},
              "budget": {"max_accuracy_drop": 1, "max_size_kb": 16, "size": "raw"}, "sampler": "nsga2"}
    parsed = parse(search).search
    assert parse(parsed).search == parsed  # idempotent: a parsed recipe's section parses to itself
    again = SearchSettings(**parsed)
    assert again.to_dict() == parsed and str(again.budget.size) == "raw" and again.budget.max_accuracy_drop == 1.0


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.floats(allow_nan=True), st.text(max_size=6),
                   st.lists(st.one_of(st.integers(-2, 40), st.floats(-1, 2), st.text(max_size=4)), max_size=3),
                   st.dictionaries(st.sampled_from(["low", "high", "step", "log", "x"]),
                                   st.one_of(st.floats(-1, 2), st.integers(-2, 40), st.booleans()), max_size=4))
SPACE = st.dictionaries(st.sampled_from(sorted(DIMENSIONS) + ["bogus"]), VALUES | st.dictionaries(
    st.sampled_from(["width", "dense1", "conv2", "nope"]), VALUES, max_size=2), max_size=4)
BUDGET = st.dictionaries(st.sampled_from(["max_accuracy_drop", "max_latency_ms", "max_size_kb", "size", "max"]),
                         VALUES | st.sampled_from(["gzip", "raw"]), max_size=4)
SECTION = st.dictionaries(st.sampled_from(list(section_keys()) + ["typo"]), VALUES, max_size=4).flatmap(
    lambda d: st.fixed_dictionaries({}, optional={"space": SPACE, "budget": BUDGET}).map(lambda extra: {**d, **extra}))


@settings(max_examples=300, deadline=None)
@given(SECTION)
def test_any_search_section_parses_or_raises_one_config_error(search):
    """Hostile sections: one one-line ConfigError naming the file, or settings the API accepts too."""
    try:
        parsed = parse(search).search
    except ConfigError as exc:
        assert "\n" not in str(exc) and "r.yaml" in str(exc)
        from edgeopt.models import digits_cnn

        with pytest.raises((ConfigError, TypeError)):  # the API refuses it too
            fields = {k: v for k, v in search.items() if k != "space"}
            SearchSettings(**fields, space=SearchSpace(search.get("space"), builder=digits_cnn))
        return
    SearchSettings(**parsed)  # the parsed section constructs
    for key, value in search.items():
        if key not in ("space", "budget") and not (isinstance(value, float) and math.isnan(value)):
            assert parsed[key] == value, key
