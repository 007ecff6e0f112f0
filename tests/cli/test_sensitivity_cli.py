"""`edgeopt sensitivity` and `edgeopt export --precision auto` on the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeopt.cli import cli
from tests.conftest import outlier_dense_model


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def fragile_files(tmp_path_factory, digits):
    root = tmp_path_factory.mktemp("sensitivity")
    outlier_dense_model(digits).save(root / "outlier.keras")
    np.savez(root / "calib.npz", x=digits.x_train[:100])
    np.savez(root / "test.npz", x=digits.x_test[:200], y=digits.y_test[:200])
    return root


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """An untrained model and data: enough for the errors found before any conversion."""
    import keras

    root = tmp_path_factory.mktemp("tiny")
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]).save(root / "tiny.keras")
    np.savez(root / "calib.npz", x=np.zeros((8, 4), np.float32))
    np.savez(root / "test.npz", x=np.zeros((8, 4), np.float32), y=np.zeros(8, int))
    return root


def test_sensitivity_help_has_an_example():
    result = run("sensitivity", "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output and "--eval-data" in result.output


def test_sensitivity_needs_its_data(tiny_files):
    result = run("sensitivity", tiny_files / "tiny.keras", "--calibration-data", tiny_files / "calib.npz")
    assert result.exit_code == 2 and "--eval-data" in result.output


def test_sensitivity_bad_file_is_one_line(tiny_files):
    result = run("sensitivity", tiny_files / "tiny.keras", "--calibration-data", tiny_files / "nope.npz",
                 "--eval-data", tiny_files / "test.npz")
    assert result.exit_code == 1
    assert "Received:" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_export_auto_without_budget_is_one_line(tiny_files):
    result = run("export", tiny_files / "tiny.keras", "-p", "auto", "--calibration-data",
                 tiny_files / "calib.npz", "--eval-data", tiny_files / "test.npz", "-o", tiny_files / "o")
    assert result.exit_code == 1
    assert "max-accuracy-drop" in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_sensitivity_prints_a_one_screen_summary(fragile_files):
    out = fragile_files / "sens"
    result = run("sensitivity", fragile_files / "outlier.keras", "--calibration-data", fragile_files / "calib.npz",
                 "--eval-data", fragile_files / "test.npz", "--out", out, "-q")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) <= 24
    assert "int8 pts" in lines[0] and "int4 dB" in lines[0] and "int8 conv dB" in lines[0]
    assert lines[2].split()[0] == "0"  # the fragile layer first
    assert "Most sensitive: op 0" in result.output
    saved = json.loads((out / "sensitivity.json").read_text())
    assert saved["ranking"]["int4"][0] == 0
    assert {r["precision"] for r in saved["rows"]} == {"int8", "int4", "int16x8"}
    converter = {r["index"]: r["converter_layer_snr_db"] for r in saved["rows"] if r["precision"] == "int8"}
    assert converter[0] < 10 < converter[1]  # the converter's own int8 (QuantizationDebugger) agrees
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_export_auto_prints_the_per_op_summary(fragile_files):
    out = fragile_files / "auto"
    result = run("export", fragile_files / "outlier.keras", "-p", "auto", "--max-accuracy-drop", "1.0",
                 "--calibration-data", fragile_files / "calib.npz", "--eval-data", fragile_files / "test.npz",
                 "-o", out, "-q")
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("auto: ")]
    assert "1 op(s) float32" in line and "vs uniform int8" in line
    saved = json.loads((out / "export_report.json").read_text())
    assert saved["entries"][0]["settings"]["choices"][0]["precision"] == "float32"


def test_recipe_export_section_takes_auto_with_a_budget(tmp_path):
    from edgeopt.errors import ConfigError
    from edgeopt.pipeline.sections import parse_export

    path = tmp_path / "recipe.yaml"
    parsed = parse_export({"precisions": ["float32", "auto"], "max_accuracy_drop": 1.0}, path)
    assert parsed["precisions"] == ["float32", "auto"] and parsed["max_accuracy_drop"] == 1.0
    with pytest.raises(ConfigError, match="export.*auto needs an accuracy budget"):
        parse_export({"precisions": ["auto"]}, path)
