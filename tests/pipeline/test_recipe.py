"""Recipe validation: every shipped recipe loads; bad recipes fail before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt import ConfigError
from edgeopt.pipeline.recipe import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))

GOOD = """
name: t
model: {builder: edgeopt.models:digits_cnn, kwargs: {width: 4}}
data: {source: digits}
train: {epochs: 1}
variants:
  - name: baseline
  - name: pruned
    steps:
      - pruning: {schedule: {constant_sparsity: {target_sparsity: 0.5}}, frequency: 5, epochs: 1}
export: {precisions: [float32, int8]}
bench: {devices: [local], runs: 5}
"""


def test_shipped_recipes_validate():
    assert {p.stem for p in RECIPES} >= {"digits_cnn", "mobilenetv2_vww96", "dscnn_kws"}
    for path in RECIPES:
        recipe = load_recipe(path)
        assert recipe.variants and recipe.export and recipe.bench, path


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("name: t\n", "name: t\nmodel: [oops\n", r"does not parse.*line 4"),
        ("- pruning:", "- sharpening:", r"Unknown technique.*Received: 'sharpening'"),
        ("edgeopt.models:digits_cnn", "edgeopt.nomodule:digits_cnn", r"module 'edgeopt.nomodule' does not import"),
        ("edgeopt.models:digits_cnn", "edgeopt.models:resnet9000", r"has no attribute 'resnet9000'"),
        ("train: {epochs: 1}", "train: {epochs: 1, epoch: 2}", r"recipe.yaml: train.*Received: epoch"),
        ("train: {epochs: 1}", "train: {epochs: 0}", r"train.epochs must be a positive integer. Received: 0"),
        ("devices: [local]", "devices: [pixel42]", r"bench.devices: No such device profile. Received: 'pixel42'"),
        ("target_sparsity: 0.5", "target_sparsity: 1.5", r"variants.pruned.pruning: target_sparsity must be in"),
        ("precisions: [float32, int8]", "precisions: [float64]", r"export.precisions: Unknown precision"),
        ("frequency: 5, epochs: 1}", "frequency: 5, epochs: 1}\n      - qat: {epochs: 1}\n      - clustering: {clusters: 8}",
         r"puts clustering after qat, which cannot work"),
        ("frequency: 5, epochs: 1}", "frequency: 5, epochs: 1}\n      - lowrank: {energy: 0.9}",
         r"puts lowrank after pruning"),
        ("data: {source: digits}\n", "", r"needs a data section"),
    ],
)
def test_bad_recipes_name_file_key_and_value(tmp_path, old, new, message):
    assert old in GOOD
    with pytest.raises(ConfigError, match=message):
        load_recipe(write(tmp_path, GOOD.replace(old, new, 1)))


def test_missing_recipe():
    with pytest.raises(ConfigError, match="Recipe not found"):
        load_recipe("recipes/nope.yaml")


def test_defaults_are_filled(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD))
    assert recipe.train["batch_size"] == 32 and recipe.export["calibration_samples"] == 200
    assert recipe.variant("pruned")["steps"][0]["pruning"]["frequency"] == 5


def test_a_variant_asking_for_auto_needs_the_export_budget():
    import yaml

    from edgeopt.pipeline.recipe import parse_recipe

    data = yaml.safe_load("""
model: {builder: edgeopt.models:digits_cnn}
data: {source: digits}
train: {epochs: 1}
variants: [{name: small, precisions: [auto]}]
export: {precisions: [float32]}
""")
    with pytest.raises(ConfigError, match=r"variants\.small\.precisions: precision auto needs an accuracy budget"):
        parse_recipe(data)
    data["export"]["max_accuracy_drop"] = 1.0
    assert parse_recipe(data).variants[0]["precisions"] == ["auto"]
