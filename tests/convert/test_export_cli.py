"""`edgeopt export` over the new export features: a crashed precision, Select TF ops,
several inputs and outputs from an .npz, flags that mirror `export_tflite`."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeopt.cli import cli
from edgeopt.cli.export import export
from edgeopt.convert._worker import CRASH_VARIABLE
from edgeopt.convert.exporter import export_tflite


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A two-input, two-output model and a free-batch LSTM as .keras files, with eval data."""
    import keras

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("cli_models")
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([a, b]))
    keras.Model([a, b], [keras.layers.Dense(3, activation="softmax", name="cls")(hidden),
                         keras.layers.Dense(1, name="reg")(hidden)]).save(root / "two.keras")
    sequence = keras.Input((5, 2))
    keras.Model(sequence, keras.layers.Dense(1)(keras.layers.LSTM(4)(sequence))).save(root / "lstm.keras")
    rng = np.random.default_rng(0)
    np.savez(root / "two.npz", x_a=rng.random((20, 4), dtype=np.float32), x_b=rng.random((20, 3), dtype=np.float32),
             y_cls=rng.integers(0, 3, 20), y_reg=rng.random(20, dtype=np.float32))
    np.savez(root / "seq.npz", x=rng.random((10, 5, 2), dtype=np.float32))
    return root


def test_flags_mirror_export_tflite():
    parameters = inspect.signature(export_tflite).parameters
    options = {p.name: p for p in export.params}
    for flag, argument in (("calibration_samples", "calibration_samples"), ("io_dtype", "io_dtype"),
                           ("max_accuracy_drop", "max_accuracy_drop"), ("output", "output_dir"), ("scale", "scale"),
                           ("mean", "mean"), ("unsafe", "unsafe"), ("select_tf_ops", "select_tf_ops"),
                           ("timeout_s", "timeout_s")):
        assert options[flag].default == parameters[argument].default, flag
    help_text = run("export", "--help").output
    assert "--select-tf-ops" in help_text and "--timeout-s" in help_text and "Example" in help_text


def test_several_inputs_and_outputs_from_an_npz(files, tmp_path):
    result = run("export", files / "two.keras", "-p", "float32", "-p", "dynamic", "--eval-data", files / "two.npz",
                 "-o", tmp_path, "-q")
    assert result.exit_code == 0, result.output
    assert "output" in result.output and "values" in result.output and "classes" in result.output
    report = json.loads((tmp_path / "export_report.json").read_text())
    assert report["outputs"] == ["cls", "reg"] and [i["name"] for i in report["inputs"]] == ["a", "b"]
    assert [o["kind"] for o in report["entries"][0]["validation"]["outputs"]] == ["classes", "values"]


def test_select_tf_ops_flag(files, tmp_path):
    refused = run("export", files / "lstm.keras", "-o", tmp_path / "a", "-q")
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "Received: converter log: error: 'tf.TensorListReserve'" in refused.output
    assert "--select-tf-ops" in refused.output
    result = run("export", files / "lstm.keras", "--select-tf-ops", "--eval-data", files / "seq.npz",
                 "-o", tmp_path / "b", "-q")
    assert result.exit_code == 0, result.output
    assert "Select TF ops allowed" in result.output and "Warning: float32: not validated" in result.output
    assert json.loads((tmp_path / "b" / "export_report.json").read_text())["select_tf_ops"] is True


def test_a_crashed_precision_is_one_line_and_a_table(files, tmp_path, monkeypatch):
    monkeypatch.setenv(CRASH_VARIABLE, "dynamic")
    result = run("export", files / "two.keras", "-p", "float32", "-p", "dynamic", "-o", tmp_path, "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "dynamic: The conversion process was killed by SIGSEGV" in error_lines[0]
    assert "float32" in result.output and "failed" in result.output
    assert (tmp_path / "two.float32.tflite").is_file() and (tmp_path / "export_report.json").is_file()
