"""Every recipe value is checked before anything runs, by the same functions the Python
API uses, with the API's defaults; names that become paths stay inside the run."""

from __future__ import annotations

import inspect
import math

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from edgeopt import ConfigError
from edgeopt.bench.arguments import validate_bench_args
from edgeopt.bench.harness import benchmark as bench, measure_latency
from edgeopt.cli import cli
from edgeopt.convert.arguments import validate_export_args
from edgeopt.convert.exporter import export_tflite
from edgeopt.pipeline.recipe import load_recipe, parse_recipe
from edgeopt.pipeline.steps import STEPS

BASE = {
    "name": "t",
    "model": {"builder": "edgeopt.models:digits_cnn", "kwargs": {"width": 4}},
    "data": {"source": "digits"},
    "train": {"epochs": 1},
    "variants": [{"name": "baseline"}],
    "export": {"precisions": ["float32"]},
    "bench": {"devices": ["local"]},
}


def recipe(**sections):
    data = {**BASE}
    for key, value in sections.items():
        if value is None:
            data.pop(key, None)
        elif isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def parse(data, tmp_path=None):
    if tmp_path is None:
        return parse_recipe(data, path="r.yaml", check_devices=False)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_recipe(path, check_devices=False)


@pytest.mark.parametrize("key, value, message", [
    ("runs", -1, "runs must be an integer >= 1"),
    ("runs", 0, "runs must be an integer >= 1"),
    ("runs", 2.5, "runs must be an integer >= 1"),
    ("runs", True, "runs must be an integer >= 1"),
    ("threads", -2, "threads must be an integer >= 1"),
    ("threads", 0, "threads must be an integer >= 1"),
    ("warmup", -5, "warmup must be an integer >= 0"),
    ("warmup", "5", "warmup must be an integer >= 0"),
    ("min_secs", -0.5, "min_secs must be a number of seconds from 0"),
    ("min_secs", float("nan"), "min_secs must be a number"),
    ("min_secs", 500, "min_secs must be a number of seconds from 0 to max_secs"),
    ("max_secs", 0, "max_secs must be a number of seconds > 0"),
    ("max_secs", float("inf"), "max_secs must be"),
    ("keep", "yes", "keep must be true or false"),
])
def test_bad_bench_values_fail_when_the_recipe_loads(tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=rf"r\.yaml: bench: {message}.*Received: {key}="):
        parse(recipe(bench={key: value}), tmp_path)
    with pytest.raises(ConfigError, match=message):  # the API refuses the same value, before touching the model
        measure_latency("no-such-model.tflite", runs=value) if key == "runs" else \
            bench(["no-such-model.tflite"], **{key: value})


@pytest.mark.parametrize("value, message", [
    ("2", "max_accuracy_drop must be a number"),
    (-1.0, "max_accuracy_drop must be a number of accuracy points >= 0"),
    (float("nan"), "max_accuracy_drop must be a number"),
    (True, "max_accuracy_drop must be a number"),
    ([2], "max_accuracy_drop must be a number"),
])
def test_bad_max_accuracy_drop_fails_when_the_recipe_loads(tmp_path, value, message):
    with pytest.raises(ConfigError, match=rf"r\.yaml: export: {message}"):
        parse(recipe(export={"max_accuracy_drop": value}), tmp_path)
    with pytest.raises(ConfigError, match=message):  # export_tflite checks it before loading the model
        export_tflite("no-such-model.keras", ["float32"], eval_data="x.npz", max_accuracy_drop=value)


@pytest.mark.parametrize("export, message", [
    ({"calibration_samples": "200"}, "calibration_samples must be an integer >= 1"),
    ({"calibration_samples": True}, "calibration_samples must be an integer >= 1"),
    ({"io_dtype": "int16"}, "Unknown io_dtype"),
])
def test_bad_export_values(export, message):
    with pytest.raises(ConfigError, match=message):
        parse(recipe(export=export))


@pytest.mark.parametrize("value", [None, [], [1], {"a": 1}, 5])
def test_bad_precision_lists(value):
    with pytest.raises(ConfigError, match="export.precisions must be a precision or a non-empty list"):
        parse(recipe(export={"precisions": value}))


def test_max_accuracy_drop_needs_data():
    with pytest.raises(ConfigError, match="max_accuracy_drop needs labelled test data"):
        parse(recipe(export={"max_accuracy_drop": 1.0}, data=None, train=None))


def test_recipe_defaults_are_the_api_defaults():
    parsed = parse({**recipe(bench={}), "export": {}})
    for function in (bench, measure_latency):
        parameters = inspect.signature(function).parameters
        for key in ("threads", "runs", "warmup", "min_secs", "max_secs", "keep"):
            assert parsed.bench[key] == parameters[key].default, (function.__name__, key)
    assert parsed.bench["devices"] == list(inspect.signature(bench).parameters["devices"].default)
    parameters = inspect.signature(export_tflite).parameters
    for key in ("calibration_samples", "io_dtype", "max_accuracy_drop"):
        assert parsed.export[key] == parameters[key].default, key
    assert parsed.export["precisions"] == [str(p) for p in parameters["precisions"].default]
    options = {p.name: p.default for p in cli.commands["bench"].params}
    for key in ("runs", "warmup", "min_secs", "max_secs"):  # and the CLI's flags agree
        assert options[key] == parsed.bench[key], key
    options = {p.name: p.default for p in cli.commands["export"].params}
    for key in ("calibration_samples", "io_dtype", "precisions"):
        assert options[key] == parsed.export[key], key


def test_recipe_bench_keys_are_the_api_arguments():
    with pytest.raises(ConfigError, match=r"Unknown key in r.yaml: bench.*Received: progress"):
        parse(recipe(bench={"progress": "x"}))
    assert parse(recipe(bench={"keep": True})).bench["keep"] is True


@pytest.mark.parametrize("name", ["../../x", "../x", "a/b", "/tmp/x", "..", ".", "", "x\ny", "-rf", 7, ["x"]])
def test_recipe_name_must_be_a_plain_name(tmp_path, name):
    with pytest.raises(ConfigError, match=r"r\.yaml: name must be 1-100 ASCII letters"):
        parse(recipe(name=name), tmp_path)


@pytest.mark.parametrize("field, value", [("name", "../../escaped"), ("variant", "train")])
def test_run_refuses_unsafe_names_of_a_recipe_built_in_python(tmp_path, monkeypatch, field, value):
    from edgeopt.pipeline.run import run_recipe

    monkeypatch.chdir(tmp_path / "..")
    parsed = parse(recipe(bench=None, export=None, train=None, data=None))
    if field == "name":
        parsed.name = value
    else:
        parsed.variants[0]["name"] = value
    with pytest.raises(ConfigError, match="Rename it"):
        run_recipe(parsed, out_dir=None if field == "name" else tmp_path / "out")
    assert not list(tmp_path.parent.parent.glob("escaped*")) and not (tmp_path / "out").exists()


def test_recipe_name_from_an_odd_file_name_is_made_safe(tmp_path):
    path = tmp_path / "my recipe (v2).yaml"
    data = recipe()
    del data["name"]
    path.write_text(yaml.safe_dump(data))
    assert load_recipe(path, check_devices=False).name == "my_recipe__v2_"


@pytest.mark.parametrize("name, message", [
    ("train", "is reserved"), ("Train", "is reserved"), ("TRAIN", "is reserved"),
    ("../x", "must be 1-64 ASCII"), ("a/b", "must be 1-64 ASCII"), ("..", "must be 1-64 ASCII"),
    ("", "must be 1-64 ASCII"), ("é", "must be 1-64 ASCII"), ("x" * 65, "must be 1-64 ASCII"),
    ("manifest.json", "must be 1-64 ASCII"), ("-x", "must be 1-64 ASCII"),
])
def test_unsafe_or_reserved_variant_names_are_refused(name, message):
    with pytest.raises(ConfigError, match=rf"variants\.1\.name {message}"):
        parse(recipe(variants=[{"name": "baseline"}, {"name": name}]))


def test_variant_names_differing_in_case_collide():
    with pytest.raises(ConfigError, match="names 'Baseline' twice"):
        parse(recipe(variants=[{"name": "baseline"}, {"name": "Baseline"}]))


@pytest.mark.parametrize("train, message", [
    ({"seed": "abc"}, "train.seed must be an integer"),
    ({"seed": -1}, "train.seed must be an integer"),
    ({"metrics": "accuracy"}, "train.metrics must be a list"),
    ({"loss": 3}, "train.loss must be the name"),
])
def test_bad_train_values(train, message):
    with pytest.raises(ConfigError, match=message):
        parse(recipe(train=train))


def test_bad_pruning_scope_fails_when_the_recipe_loads():
    step = {"pruning": {"schedule": {"constant_sparsity": {"target_sparsity": 0.5}}, "scope": "everything"}}
    with pytest.raises(ConfigError, match="Unknown scope"):
        parse(recipe(variants=[{"name": "p", "steps": [step]}]))


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True), st.text(max_size=5),
                   st.lists(st.integers(), max_size=2))
BENCH = st.dictionaries(st.sampled_from(["threads", "runs", "warmup", "min_secs", "max_secs", "keep"]), VALUES)
EXPORT = st.dictionaries(st.sampled_from(["calibration_samples", "io_dtype", "max_accuracy_drop"]),
                         VALUES | st.sampled_from(["int8", "uint8", "float32"]))


@settings(max_examples=200, deadline=None)
@given(BENCH, EXPORT)
def test_recipe_accepts_exactly_what_the_api_accepts(bench_section, export_section):
    def api_accepts(check, values):
        try:
            check(**values)
            return True
        except ConfigError:
            return False

    try:
        parsed = parse(recipe(bench=bench_section, export=export_section))
    except ConfigError as exc:
        assert "\n" not in str(exc)
        assert not (api_accepts(validate_bench_args, bench_section)
                    and api_accepts(validate_export_args, export_section)), str(exc)
        return
    assert api_accepts(validate_bench_args, bench_section) and api_accepts(validate_export_args, export_section)
    for key, value in bench_section.items():
        assert parsed.bench[key] == value or (isinstance(value, float) and math.isnan(value))


ANY = st.recursive(st.none() | st.booleans() | st.integers(-3, 300) | st.floats() | st.text(max_size=8),
                   lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                   max_leaves=12)
SECTION_KEYS = {
    "model": ["builder", "kwargs", "path"], "data": ["source", "train", "val", "test", "loader", "kwargs"],
    "train": ["epochs", "batch_size", "optimizer", "learning_rate", "loss", "metrics", "seed"],
    "export": ["precisions", "calibration_samples", "max_accuracy_drop", "io_dtype"],
    "bench": ["devices", "threads", "runs", "warmup", "min_secs", "max_secs", "keep"],
}
VALID_STEPS = {
    "pruning": {"schedule": {"constant_sparsity": {"target_sparsity": 0.5}}},
    "clustering": {"clusters": 8}, "lowrank": {"energy": 0.9}, "qat": {},
    "distill": {"student": {"builder": "edgeopt.models:digits_cnn", "kwargs": {"width": 2}}},
}
STEP = st.sampled_from(sorted(VALID_STEPS)).flatmap(
    lambda kind: st.dictionaries(st.sampled_from(sorted(STEPS[kind].keys())), ANY, max_size=2).map(
        lambda extra: {kind: {**VALID_STEPS[kind], **extra}}))
VARIANT = st.fixed_dictionaries({"name": st.sampled_from(["a", "b", "c"]) | ANY},
                                optional={"steps": st.lists(STEP, max_size=2) | ANY, "precisions": ANY})


def section(name: str, keys: list[str]):
    """Mostly the valid base section, or it with a few keys replaced, sometimes anything at all."""
    return st.one_of(st.just(BASE[name]), st.just(BASE[name]),
                     st.dictionaries(st.sampled_from(keys), ANY, max_size=3).map(lambda d: {**BASE[name], **d}),
                     st.dictionaries(st.sampled_from(keys), ANY, max_size=4) | ANY)


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({"model": section("model", SECTION_KEYS["model"])}, optional={
    **{name: section(name, keys) for name, keys in SECTION_KEYS.items() if name != "model"},
    "name": st.one_of(st.just("t"), st.just("t"), st.just("t"), ANY), "description": ANY,
    "variants": st.lists(VARIANT, max_size=3) | ANY}))
def test_any_recipe_parses_or_raises_one_config_error(data):
    try:
        parse_recipe(data, path="r.yaml", check_devices=False)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=2))
def test_any_steps_parse_or_raise_one_config_error(steps):
    try:
        parse(recipe(variants=[{"name": "a", "steps": steps}]))
    except ConfigError as exc:
        assert "\n" not in str(exc)
