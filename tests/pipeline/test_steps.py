"""Recipe steps come from one registry (`edgeopt.pipeline.steps.STEPS`): each step is a
public callable, whose signature gives the keys and defaults and whose own checks
validate the values; a new technique is one registry line."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import edgeopt
from edgeopt import ConfigError
from edgeopt._callback import FitCallback
from edgeopt.bench.harness import benchmark, measure_latency
from edgeopt.convert.exporter import export_tflite
from edgeopt.pipeline import steps as steps_lib
from edgeopt.pipeline.recipe import parse_recipe
from edgeopt.pipeline.steps import PIPELINE_KEYS, STEPS, Step

# Every step and the public callable it must be: a new step fails here until it is named.
PUBLIC = {"pruning": edgeopt.Pruning, "clustering": edgeopt.cluster_weights, "lowrank": edgeopt.factorize,
          "qat": edgeopt.quantize_aware, "distill": edgeopt.Distiller, "channel_pruning": edgeopt.prune_channels}
# The least each step needs.
REQUIRED = {
    "pruning": {"schedule": {"constant_sparsity": {"target_sparsity": 0.5}}},
    "clustering": {}, "lowrank": {}, "qat": {}, "channel_pruning": {"ratio": 0.5},
    "distill": {"student": {"builder": "edgeopt.models:digits_cnn", "kwargs": {"width": 2}}},
}
STUDENT = {"builder": "edgeopt.models:digits_cnn", "kwargs": {"width": 2}, "path": None}


def parse(*steps, **sections):
    data = {"name": "t", "model": {"builder": "edgeopt.models:digits_cnn", "kwargs": {"width": 4}},
            "data": {"source": "digits"}, "train": {"epochs": 1}, "variants": [{"name": "v", "steps": list(steps)}],
            **sections}
    return parse_recipe(data, path="r.yaml", check_devices=False)


def settings_of(recipe, index=0):
    ((kind, settings),) = recipe.variants[0]["steps"][index].items()
    return kind, settings


def test_every_step_is_its_public_callable():
    assert set(STEPS) == set(PUBLIC)
    for kind, function in PUBLIC.items():
        assert STEPS[kind].callable() is function, kind


@pytest.mark.parametrize("kind", sorted(PUBLIC))
def test_step_keys_are_the_callables_arguments(kind):
    spec = STEPS[kind]
    parameters = inspect.signature(PUBLIC[kind]).parameters
    assert set(spec.keys()) == (set(parameters) - {spec.model, *spec.hidden}) | {"epochs", *spec.pipeline}
    assert spec.keys() - set(parameters) <= set(PIPELINE_KEYS)
    if spec.check is not None:  # the check takes some of the callable's arguments, never others
        check = steps_lib._resolve(spec.check)
        assert set(inspect.signature(check).parameters) <= set(parameters) - {spec.model}, kind


@pytest.mark.parametrize("kind", sorted(PUBLIC))
def test_step_defaults_are_the_api_defaults(kind):
    """What a step leaves unset reaches the callable unset, so the API's default applies;
    and the defaults the registry reports are the signature's."""
    parameters = inspect.signature(PUBLIC[kind]).parameters
    defaults = STEPS[kind].defaults()
    for name, value in defaults.items():
        if name in PIPELINE_KEYS:
            assert value == PIPELINE_KEYS[name].default, (kind, name)
        else:
            assert value == parameters[name].default, (kind, name)
    _, settings = settings_of(parse({kind: REQUIRED[kind]}))
    passed = STEPS[kind].arguments(settings)
    assert set(passed) == set(REQUIRED[kind]), kind  # nothing else: the callable's defaults apply
    assert settings["epochs"] == PIPELINE_KEYS["epochs"].default


def test_section_defaults_are_the_api_defaults():
    recipe = parse(export={}, bench={})
    parameters = inspect.signature(export_tflite).parameters
    for key, value in recipe.export.items():
        expected = parameters[key].default
        assert value == ([str(p) for p in expected] if key == "precisions" else expected), key
    for function in (benchmark, measure_latency):
        parameters = inspect.signature(function).parameters
        for key, value in recipe.bench.items():
            if key in parameters:
                expected = parameters[key].default
                assert value == (list(expected) if key == "devices" else expected), (function.__name__, key)


def test_step_values_are_checked_by_the_api_itself():
    cases = [
        ({"clustering": {"clusters": 2, "preserve_sparsity": True}}, edgeopt.cluster_weights,
         dict(clusters=2, preserve_sparsity=True)),
        ({"clustering": {"init": "random"}}, edgeopt.cluster_weights, dict(init="random")),
        ({"lowrank": {"energy": 1.5}}, edgeopt.factorize, dict(energy=1.5)),
        ({"lowrank": {"rank": 0}}, edgeopt.factorize, dict(rank=0)),
        ({"qat": {"skip": "dense"}}, edgeopt.quantize_aware, dict(skip="dense")),
    ]
    for step, function, kwargs in cases:
        with pytest.raises(ConfigError) as api:
            function(object(), **kwargs)  # the API refuses before it looks at the model
        with pytest.raises(ConfigError) as recipe:
            parse(step)
        kind = next(iter(step))
        assert str(recipe.value) == f"r.yaml: variants.v.{kind}: {api.value}"
        assert "Received: " in str(recipe.value)


@pytest.mark.parametrize("step, message", [
    ({"distill": {**REQUIRED["distill"], "alpha": 2}}, r"variants\.v\.distill: alpha must be in \[0, 1\]"),
    ({"distill": {**REQUIRED["distill"], "features": "dense"}}, r"variants\.v\.distill: features must be a list"),
    ({"distill": {}}, r"variants\.v\.distill\.student is required"),
    ({"distill": {"student": {"builder": "edgeopt.models:digits_cnn", "kwargs": {"widht": 2}}}},
     r"variants\.v\.distill\.student\.kwargs do not fit"),
    ({"qat": {"learning_rate": -1}}, r"variants\.v\.qat\.learning_rate must be a positive number. Received: -1"),
    ({"qat": {"epochs": 0}}, r"variants\.v\.qat\.epochs must be a positive integer. Received: 0"),
    ({"pruning": {"schedule": {"cubic": {}}}}, r"variants\.v\.pruning\.schedule must be one of"),
    ({"pruning": {"schedule": {"constant_sparsity": 0.5}}}, r"pruning\.schedule\.constant_sparsity must be a mapping"),
    ({"pruning": {**REQUIRED["pruning"], "hold": True}}, r"Unknown key in r\.yaml: variants\.v\.pruning"),
])
def test_bad_step_values_name_file_variant_and_key(step, message):
    with pytest.raises(ConfigError, match=message):
        parse(step)


def test_valid_steps_keep_what_was_written():
    recipe = parse({"pruning": {**REQUIRED["pruning"], "frequency": 5}}, {"qat": {"preserve": "sparsity"}})
    assert settings_of(recipe, 0) == ("pruning", {**REQUIRED["pruning"], "frequency": 5, "epochs": 3, "distill": True})
    assert settings_of(recipe, 1) == ("qat", {"preserve": "sparsity", "epochs": 3})  # learning_rate: decided at run
    assert settings_of(parse({"distill": REQUIRED["distill"]})) == ("distill", {"student": STUDENT, "epochs": 3})


class Sharpen(FitCallback):
    """A stand-in technique: a callback whose constructor checks its argument."""

    def __init__(self, strength: float = 0.5, *, verbose: int = 0):
        super().__init__()
        if not isinstance(strength, (int, float)) or not 0 < strength <= 1:
            raise ConfigError(f"strength must be in (0, 1]. Received: strength={strength!r}.")
        self.strength, self.batches = strength, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def halve(model, *, factor: int = 2, name: str = "halved"):
    """A stand-in transform of a model, with a check that needs no model."""
    check_halve(factor)
    return model


def check_halve(factor):
    if not isinstance(factor, int) or factor < 1:
        raise ConfigError(f"factor must be an integer >= 1. Received: factor={factor!r}.")


def test_a_new_technique_is_one_registry_line(monkeypatch):
    monkeypatch.setitem(STEPS, "sharpen", Step(Sharpen, hidden=("verbose",)))
    monkeypatch.setitem(STEPS, "halve", Step(halve, check_halve))
    recipe = parse({"sharpen": {"strength": 0.25, "epochs": 1}}, {"halve": {}})
    assert settings_of(recipe, 0) == ("sharpen", {"strength": 0.25, "epochs": 1})
    assert STEPS["sharpen"].defaults() == {"strength": 0.5, "epochs": 3}
    assert STEPS["halve"].defaults() == {"factor": 2, "name": "halved", "epochs": 3}
    with pytest.raises(ConfigError, match=r"^r\.yaml: variants\.v\.sharpen: strength must be in \(0, 1\]\. "
                                          r"Received: strength=2\.$"):
        parse({"sharpen": {"strength": 2}})
    with pytest.raises(ConfigError, match=r"^r\.yaml: variants\.v\.halve: factor must be an integer >= 1\. "
                                          r"Received: factor=0\.$"):
        parse({"halve": {"factor": 0}})
    with pytest.raises(ConfigError, match=r"Unknown key in r\.yaml: variants\.v\.sharpen\. Received: verbose\. "
                                          r"Allowed: epochs, strength"):
        parse({"sharpen": {"verbose": 1}})
    with pytest.raises(ConfigError, match=r"Received: 'sharp'\. Use one of: .*sharpen"):
        parse({"sharp": {}})


def test_a_registered_callback_runs_in_the_pipeline(monkeypatch):
    import keras

    from edgeopt.pipeline.techniques import Data, apply_step

    made = []

    class Counted(Sharpen):
        def __init__(self, strength: float = 0.5):
            super().__init__(strength)
            made.append(self)

    monkeypatch.setitem(STEPS, "sharpen", Step(Counted))
    monkeypatch.setitem(STEPS, "halve", Step(halve, check_halve))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    rng = np.random.default_rng(0)
    data = Data(rng.normal(size=(16, 4)).astype("float32"), rng.integers(0, 2, 16), None, None, None, None)
    train = {"optimizer": "sgd", "learning_rate": 0.01, "loss": "sparse_categorical_crossentropy",
             "metrics": ["accuracy"], "batch_size": 8}
    recipe = parse({"sharpen": {"strength": 0.25, "epochs": 2}}, {"halve": {"factor": 3, "epochs": 1}})
    for index in range(2):
        kind, settings = settings_of(recipe, index)
        assert apply_step(kind, settings, model, data, train, lambda line: None, {}) is model
    # one built to validate the recipe, one fitted with: 2 epochs of 2 batches
    assert [c.strength for c in made] == [0.25, 0.25] and [c.batches for c in made] == [0, 4]


def test_schedules_build_the_public_classes():
    schedule = steps_lib.build_schedule({"polynomial_decay": {"initial_sparsity": 0.0, "final_sparsity": 0.5,
                                                              "begin_step": 0, "end_step": 10}})
    assert isinstance(schedule, edgeopt.PolynomialDecay)
    assert {name: getattr(edgeopt, cls) for name, cls in steps_lib.SCHEDULES.items()}.keys() == {
        "constant_sparsity", "polynomial_decay"}


def test_the_train_optimizers_are_one_table():
    import keras
    import tf_keras

    from edgeopt.pipeline.recipe import OPTIMIZERS
    from edgeopt.pipeline.techniques import _optimizer

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    for name, cls in OPTIMIZERS.items():
        assert parse(train={"epochs": 1, "optimizer": name}).train["optimizer"] == name
        assert hasattr(tf_keras.optimizers, cls)
        optimizer = _optimizer(model, {"optimizer": name, "learning_rate": 0.01})
        assert type(optimizer) is getattr(keras.optimizers, cls)
    with pytest.raises(ConfigError, match=r"train\.optimizer is unknown\. Received: 'nadam'\. "
                                          r"Use one of: adam, adamw, sgd, rmsprop\."):
        parse(train={"epochs": 1, "optimizer": "nadam"})
