"""The search space: Optuna samples each dimension; sampled values become the recipe
steps `edgeopt run` would apply, in an order recipes allow."""

from __future__ import annotations

import optuna
import pytest

from edgeopt import ConfigError
from edgeopt.pipeline.recipe import FORBIDDEN
from edgeopt.search import space as space_lib
from edgeopt.search.space import DIMENSIONS, Choice, Dimension, Range, SearchSpace, StepContext

CONTEXT = StepContext(epochs=3, distill_epochs=7, steps_per_epoch=10, builder="edgeopt.models:digits_cnn",
                      base_kwargs={"width": 16, "flavour": "keras3"})


def test_steps_follow_the_sampled_values():
    space = SearchSpace({"student": {"width": [8, 16]}, "sparsity": [0.0, 0.8], "clusters": [0, 16],
                         "layer_sparsity": {"dense1": [0.0, 0.9]}, "precision": ["int8"]})
    steps = space.steps({"student.width": 8, "sparsity": 0.8, "layer_sparsity.dense1": 0.9, "clusters": 16,
                         "precision": "int8"}, CONTEXT)
    assert [kind for kind, _, _ in steps] == ["distill", "pruning", "pruning", "clustering"]
    distill, global_, layer, cluster = (settings for _, settings, _ in steps)
    assert distill["student"] == {"builder": "edgeopt.models:digits_cnn", "path": None,
                                  "kwargs": {"width": 8, "flavour": "keras3"}} and distill["epochs"] == 7
    schedule = global_["schedule"]["polynomial_decay"]
    assert schedule["final_sparsity"] == 0.8 and schedule["end_step"] == 20  # two of three epochs ramp
    assert global_["scope"] == "global" and global_["exclude"] == ["dense1"] and global_["epochs"] == 3
    assert layer["include"] == ["dense1"] and layer["schedule"]["polynomial_decay"]["final_sparsity"] == 0.9
    assert [keep for _, _, keep in steps] == [False, False, True, False]  # the per-layer step keeps earlier zeros
    assert cluster == {"clusters": 16, "epochs": 3}
    kinds = [kind for kind, _, _ in steps]
    assert not any((a, b) in FORBIDDEN for i, a in enumerate(kinds) for b in kinds[i + 1:])


def test_zero_values_and_the_trained_width_add_no_step():
    space = SearchSpace({"student": {"width": [8, 16]}, "sparsity": [0.0, 0.8], "clusters": [0, 16]})
    assert space.steps({"student.width": 16, "sparsity": 0.0, "clusters": 0, "precision": "float32"}, CONTEXT) == []


def test_optuna_samples_every_dimension_within_its_spec():
    space = SearchSpace({"student": {"width": [4, 8]}, "sparsity": {"low": 0.0, "high": 0.9, "step": 0.1},
                         "clusters": {"low": 4, "high": 32, "step": 4}, "layer_sparsity": {"conv2": [0.5]},
                         "precision": ["float16", "int8"]})
    study = optuna.create_study(directions=["minimize"] * 3, sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(30):
        trial = study.ask()
        params = space.suggest(trial)
        assert trial.params == params  # Optuna records every value it sampled
        seen.append(params)
        study.tell(trial, [0.0, 0.0, 0.0])
    assert {p["student.width"] for p in seen} == {4, 8} and {p["precision"] for p in seen} == {"float16", "int8"}
    assert all(round(10 * p["sparsity"], 6).is_integer() and 0 <= p["sparsity"] <= 0.9 for p in seen)
    assert all(p["clusters"] % 4 == 0 and 4 <= p["clusters"] <= 32 for p in seen)
    assert all(p["layer_sparsity.conv2"] == 0.5 for p in seen)


def test_a_space_round_trips_through_its_specs():
    space = SearchSpace({"sparsity": {"low": 0.1, "high": 0.5}, "clusters": 8, "precision": ["int8", "dynamic"]})
    assert space.domains["clusters"] == Choice((8,)) and space.domains["sparsity"] == Range(0.1, 0.5)
    assert SearchSpace(space.to_dict()).to_dict() == space.to_dict()


def test_the_default_space_has_every_float_and_8_bit_precision():
    from edgeopt.convert.precision import Precision

    precisions = SearchSpace().to_dict()["precision"]
    assert {"float32", "float16", "dynamic", "int8"} <= set(precisions)
    assert ("auto" in precisions) == ("auto" in {p.value for p in Precision})


def test_a_new_technique_is_one_registry_line(monkeypatch):
    """How a new technique joins the space: one entry."""
    registry = dict(DIMENSIONS)
    registry = {**{k: v for k, v in registry.items() if k in ("student",)},
                "other_ratio": Dimension(space_lib._fraction, space_lib.technique_steps("prune_more", "ratio")),
                **{k: v for k, v in registry.items() if k != "student"}}
    monkeypatch.setattr(space_lib, "DIMENSIONS", registry)
    space = SearchSpace({"other_ratio": [0.0, 0.25], "sparsity": [0.5]})
    steps = space.steps({"other_ratio": 0.25, "sparsity": 0.5, "precision": "float32"}, CONTEXT)
    assert [(kind, settings.get("ratio")) for kind, settings, _ in steps] == [("prune_more", 0.25),
                                                                              ("pruning", None)]
    with pytest.raises(ConfigError, match="space.other_ratio values must be fractions"):
        SearchSpace({"other_ratio": [1.5]})


def test_a_builder_kwarg_range_of_integers_samples_integers():
    space = SearchSpace({"student": {"width": {"low": 4, "high": 12, "step": 4}}})
    assert space.domains["student"]["width"] == Range(4, 12, 4, False, True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    values = {space.suggest(study.ask())["student.width"] for _ in range(20)}
    assert values == {4, 8, 12} and all(isinstance(v, int) for v in values)


def test_channel_ratio_becomes_a_channel_pruning_step_before_pruning():
    space = SearchSpace({"channel_ratio": [0.0, 0.5], "sparsity": [0.0, 0.8], "precision": ["int8"]})
    steps = space.steps({"channel_ratio": 0.5, "sparsity": 0.8, "precision": "int8"}, CONTEXT)
    assert [kind for kind, _, _ in steps] == ["channel_pruning", "pruning"]
    assert steps[0][1] == {"ratio": 0.5, "epochs": 3}
    assert ("pruning", "channel_pruning") in FORBIDDEN  # the order above is the only allowed one
    assert space.steps({"channel_ratio": 0.0, "sparsity": 0.0, "precision": "int8"}, CONTEXT) == []
    with pytest.raises(ConfigError, match="channel_ratio"):
        SearchSpace({"channel_ratio": [1.0]})
