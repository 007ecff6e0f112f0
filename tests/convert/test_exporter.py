"""export_tflite on real models with the real converter and the real LiteRT interpreter.

`ExportContract` is a template run once per Keras flavour (Keras 3 and tf_keras).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeopt import AccuracyGateError, ConfigError, export_tflite, inspect_tflite
from edgeopt.convert.interpreter import TfliteRunner
from tests.conftest import outlier_dense_model

ALL = ["float32", "float16", "dynamic", "int8", "int16x8", "int4"]

# Per precision: expected input dtype, minimum top-1 agreement with Keras, maximum
# accuracy drop in points, maximum absolute output error (softmax outputs in [0, 1]).
EXPECT = {
    "float32": ("float32", 1.0, 0.0, 1e-4),
    "float16": ("float32", 0.99, 1.0, 1e-2),
    "dynamic": ("float32", 0.95, 3.0, 0.2),
    "int8": ("int8", 0.95, 3.0, 0.2),
    "int16x8": ("float32", 0.97, 2.0, 0.1),
    "int4": ("float32", 0.6, 25.0, 1.0),
}


class ExportContract:
    flavour: str

    @pytest.fixture(scope="class")
    def exported(self, request, trained, digits, tmp_path_factory):
        model = trained(self.flavour)
        weights_before = [w.copy() for w in model.get_weights()]
        out = tmp_path_factory.mktemp(f"export_{self.flavour}")
        report = export_tflite(model, ALL, output_dir=out, calibration_data=digits.x_train,
                               eval_data=(digits.x_test, digits.y_test), calibration_samples=100)
        return model, weights_before, report, out

    def test_input_model_untouched(self, exported):
        model, before, _, _ = exported
        for a, b in zip(before, model.get_weights()):
            np.testing.assert_array_equal(a, b)

    @pytest.mark.parametrize("precision", ALL)
    def test_precision_file_and_validation(self, exported, digits, precision):
        model, _, report, out = exported
        entry = report[precision]
        in_dtype, min_agreement, max_drop, max_err = EXPECT[precision]
        assert entry.status == "ok"
        path = out / f"digits_cnn.{precision}.tflite"
        assert entry.path == str(path) and path.is_file()
        assert entry.input_dtype == in_dtype
        v = entry.validation
        assert v["samples"] == len(digits.x_test)
        assert v["top1_agreement"] >= min_agreement
        assert v["accuracy_drop_points"] <= max_drop
        assert v["max_abs_error"] <= max_err
        # the report's figures are the file's own: rerun it independently in LiteRT
        out_tflite = TfliteRunner(path.read_bytes()).run(digits.x_test[:50])
        keras_out = model.predict(digits.x_test[:50], verbose=0)
        assert np.mean(out_tflite.argmax(1) == keras_out.argmax(1)) >= min_agreement - 0.05

    def test_weights_are_stored_at_the_precision(self, exported):
        _, _, report, _ = exported
        dtypes = {p: inspect_tflite(report[p].path).weight_dtypes for p in ALL}
        assert "float32" in dtypes["float32"] and "int8" not in dtypes["float32"]
        assert "float16" in dtypes["float16"]
        assert "int8" in dtypes["dynamic"]
        assert "int4" in dtypes["int4"]
        assert report["float16"].size_bytes < 0.6 * report["float32"].size_bytes
        assert report["int8"].size_bytes < 0.4 * report["float32"].size_bytes

    def test_int8_is_fully_integer(self, exported):
        _, _, report, _ = exported
        info = inspect_tflite(report["int8"].path)
        assert info.fully_integer and info.integer_io and not info.float_ops
        assert info.inputs[0].dtype == "int8" and info.outputs[0].dtype == "int8"
        assert info.inputs[0].scale and info.inputs[0].zero_point
        assert not inspect_tflite(report["dynamic"].path).fully_integer

    def test_report_file(self, exported):
        _, _, report, out = exported
        data = json.loads((out / "export_report.json").read_text())
        assert [e["precision"] for e in data["entries"]] == ALL
        assert data["reference"]["samples"] == report["float32"].validation["samples"]
        assert data["reference"]["accuracy"] > 0.8
        for entry in data["entries"]:
            assert len(entry["sha256"]) == 64 and entry["gzip_size_bytes"] < entry["size_bytes"] * 1.1
            assert entry["settings"]["tool"] in ("tflite-converter", "ai-edge-quantizer")
        assert data["versions"]["tensorflow"].startswith("2.")
        assert not list(out.glob(".*.tmp"))


class TestKeras3Export(ExportContract):
    flavour = "keras3"


class TestTfKerasExport(ExportContract):
    flavour = "tf_keras"


@pytest.mark.parametrize("io_dtype, np_dtype", [("uint8", "uint8"), ("float32", "float32")])
def test_int8_io_dtype(keras3_model, digits, tmp_path, io_dtype, np_dtype):
    report = export_tflite(keras3_model, ["int8"], output_dir=tmp_path, calibration_data=digits.x_train[:50],
                           eval_data=(digits.x_test, digits.y_test), io_dtype=io_dtype)
    info = inspect_tflite(report["int8"].path)
    assert info.inputs[0].dtype == np_dtype and info.outputs[0].dtype == np_dtype
    assert info.fully_integer
    assert report["int8"].validation["top1_agreement"] >= 0.95


def test_saved_model_directory_and_keras_file(data_files, digits, tmp_path, keras3_model):
    saved = tmp_path / "sm"
    keras3_model.export(str(saved), format="tf_saved_model", verbose=False)
    from_dir = export_tflite(saved, ["float32"], output_dir=tmp_path / "a", eval_data=(digits.x_test, digits.y_test),
                             unsafe=True)
    from_file = export_tflite(data_files / "model.keras", ["float32"], output_dir=tmp_path / "b",
                              eval_data=(digits.x_test, digits.y_test))
    assert from_dir.source.startswith("SavedModel") and from_file.source.startswith("keras3")
    assert from_dir["float32"].validation["max_abs_error"] < 1e-4
    assert from_file["float32"].validation["max_abs_error"] < 1e-4
    assert (tmp_path / "a" / "sm.float32.tflite").is_file()
    assert (tmp_path / "b" / "model.float32.tflite").is_file()


def test_accuracy_gate_keeps_rejected_file(digits, tmp_path):
    model = outlier_dense_model(digits)
    with pytest.raises(AccuracyGateError, match="int8 lost more than 5.0 accuracy points") as caught:
        export_tflite(model, ["float32", "int8"], output_dir=tmp_path, calibration_data=digits.x_train[:50],
                      eval_data=(digits.x_test, digits.y_test), max_accuracy_drop=5.0)
    report = caught.value.report
    assert report["float32"].status == "ok"
    assert report["int8"].status == "rejected" and report["int8"].validation["accuracy_drop_points"] > 5.0
    assert (tmp_path / "outlier_mlp.int8.tflite.rejected").is_file()
    assert not (tmp_path / "outlier_mlp.int8.tflite").exists()
    assert json.loads((tmp_path / "export_report.json").read_text())["entries"][1]["status"] == "rejected"


def test_quantizer_result_that_disagrees_falls_back_to_converter(digits, tmp_path):
    model = outlier_dense_model(digits)
    report = export_tflite(model, ["dynamic"], output_dir=tmp_path, eval_data=(digits.x_test, digits.y_test))
    settings = report["dynamic"].settings
    assert settings["tool"] == "tflite-converter"
    assert "agreement with float32" in settings["fallback_reason"]


def test_int8_without_calibration_names_the_fix(keras3_model, tmp_path):
    with pytest.raises(ConfigError, match="int8 need calibration data.*--calibration-data"):
        export_tflite(keras3_model, ["float32", "int8"], output_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_precision(keras3_model, tmp_path):
    with pytest.raises(ConfigError, match="Received: precision='int3'"):
        export_tflite(keras3_model, ["int3"], output_dir=tmp_path)


@pytest.mark.parametrize("name", ["../escaped", "sub/model", "/tmp/abs", "..", ".", "", "a\\b", "nul\0byte"])
def test_name_cannot_leave_the_output_directory(keras3_model, tmp_path, name):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"plain file stem.*Received: name=") as caught:
        export_tflite(keras3_model, ["float32"], output_dir=out, name=name)
    assert "\n" not in str(caught.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_disk_full_during_export_keeps_finished_files_whole(keras3_model, digits, tmp_path, monkeypatch):
    """ENOSPC while int8 is written: one OutputError, no partial int8 file, float32 intact."""
    import errno
    import os

    from edgeopt import OutputError
    from edgeopt import _files

    real_write, written = os.write, []

    def write(fd, data):
        if len(data) > 3000 and written:  # the second model file: a few bytes go, then the disk is full
            real_write(fd, bytes(data[:100]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(_files.os, "write", write)
    with pytest.raises(OutputError, match=r"No space left on device\. Received: '.*model\.int8\.tflite'") as caught:
        export_tflite(keras3_model, ["float32", "int8"], output_dir=tmp_path, name="model",
                      calibration_data=digits.x_train[:50])
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.float32.tflite"]
    assert inspect_tflite(tmp_path / "model.float32.tflite").size_bytes == written[0]


@pytest.mark.parametrize("labels, message", [(np.full(50, 0.5), "non-integer"), (np.full(50, 12), "from 0 to 9")])
def test_eval_labels_must_be_class_indices(keras3_model, digits, tmp_path, labels, message):
    with pytest.raises(ConfigError, match=message):
        export_tflite(keras3_model, ["float32"], output_dir=tmp_path, eval_data=(digits.x_test[:50], labels))
    assert not (tmp_path / "export_report.json").exists()


def test_float_targets_of_a_regression_model_are_fine(digits, tmp_path):
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    report = export_tflite(model, ["float32"], output_dir=tmp_path, eval_data=(digits.x_test[:20], np.full(20, 0.5)))
    assert report["float32"].validation["accuracy"] is None
