"""`edgeopt run --unsafe` (`run_recipe(unsafe=True)`): a recipe's model file with Python code."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgeopt.cli import cli


@pytest.fixture(scope="module")
def lambda_recipe(tmp_path_factory):
    import keras

    root = tmp_path_factory.mktemp("unsafe")
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(keras.layers.Lambda(lambda x: x * 2.0)(inputs))
    keras.Model(inputs, outputs).save(root / "lambda.keras")
    recipe = root / "recipe.yaml"
    recipe.write_text(f"name: lambda_model\nmodel: {{path: {json.dumps(str(root / 'lambda.keras'))}}}\n")
    return root, recipe


def test_run_refuses_a_lambda_model_file_without_unsafe(lambda_recipe):
    root, recipe = lambda_recipe
    result = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(root / "safe"), "-q"])
    assert result.exit_code == 1
    manifest = json.loads((root / "safe" / "manifest.json").read_text())
    assert manifest["stages"]["train"]["status"] == "failed"
    assert "--unsafe" in manifest["stages"]["train"]["error"]
    assert not list((root / "safe").glob("train/model.*"))


def test_run_with_unsafe_loads_it(lambda_recipe):
    root, recipe = lambda_recipe
    result = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(root / "unsafe"), "-q", "--unsafe"])
    assert result.exit_code == 0, result.output
    assert (root / "unsafe" / "train" / "model.keras").is_file()
