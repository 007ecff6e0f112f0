"""Validation that fits the model (issue 12 item 4) and the int4 warning (item 8).

A U-Net-like segmentation model with dense labels, a regression model with float
targets, label reading on its own, and int4 flagged when it is far from float32.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeopt import ConfigError, export_tflite
from edgeopt.convert.validate import compare_outputs, match_labels
from tests.conftest import outlier_dense_model


@pytest.fixture(scope="module")
def segmentation():
    """A small U-Net (down, up, skip connection) labelling each pixel dark / mid / bright."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((96, 16, 16, 1), dtype=np.float32)
    y = np.digitize(x[..., 0], [0.33, 0.66])  # (N, 16, 16) class per pixel
    inputs = keras.Input((16, 16, 1))
    down = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    bottom = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(keras.layers.MaxPooling2D()(down))
    up = keras.layers.Concatenate()([keras.layers.UpSampling2D()(bottom), down])
    outputs = keras.layers.Conv2D(3, 1, activation="softmax")(keras.layers.Conv2D(8, 3, padding="same",
                                                                                   activation="relu")(up))
    model = keras.Model(inputs, outputs, name="unet")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    return model, x, y


def test_segmentation_gets_pixel_accuracy_and_iou(segmentation, tmp_path):
    model, x, y = segmentation
    report = export_tflite(model, ["float32", "int8"], output_dir=tmp_path, calibration_data=x[:48],
                           eval_data=(x, y), max_accuracy_drop=5.0)
    reference = report.reference["outputs"][0]
    assert reference["kind"] == "dense_classes" and reference["accuracy"] > 0.85 and reference["mean_iou"] > 0.7
    assert report.reference["accuracy"] == reference["accuracy"]
    for precision in ("float32", "int8"):
        v = report[precision].validation
        (output,) = v["outputs"]
        assert output["kind"] == "dense_classes" and report[precision].status == "ok"
        assert output["top1_agreement"] >= 0.95  # per pixel
        assert output["accuracy"] == v["accuracy"] and abs(v["accuracy_drop_points"]) < 5.0
        assert output["mean_iou"] > 0.7 and output["reference_mean_iou"] == pytest.approx(reference["mean_iou"])
    assert report["float32"].validation["accuracy_drop_points"] == 0.0


@pytest.fixture(scope="module")
def regression():
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((200, 6), dtype=np.float32)
    y = np.stack([x.sum(1), 3 * x[:, 0]], axis=1).astype(np.float32)  # two float targets per sample
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(32, activation="relu")(inputs)),
                        name="regressor")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, epochs=60, batch_size=32, verbose=0)
    return model, x, y


def test_regression_gets_errors_not_accuracy(regression, tmp_path):
    model, x, y = regression
    report = export_tflite(model, ["float32", "dynamic", "int8"], output_dir=tmp_path, calibration_data=x,
                           eval_data=(x, y))
    reference_mae = report.reference["outputs"][0]["target_mean_abs_error"]
    assert report.reference["accuracy"] is None and reference_mae < 0.2
    for precision in ("float32", "dynamic", "int8"):
        v = report[precision].validation
        (output,) = v["outputs"]
        assert output["kind"] == "values" and v["accuracy"] is None and v["top1_agreement"] is None
        assert output["relative_error"] < 0.03
        assert output["target_mean_abs_error"] == pytest.approx(reference_mae, abs=0.05)
    assert report["float32"].validation["max_abs_error"] < 1e-4
    with pytest.raises(ConfigError, match=r"max_accuracy_drop needs labels"):
        export_tflite(model, ["float32"], output_dir=tmp_path, eval_data=x, max_accuracy_drop=1.0)


def test_labels_are_read_against_each_output():
    scores = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    assert match_labels(np.array([0, 1, 2, 1]), scores).kind == "classes"
    assert match_labels(scores, scores).y.tolist() == [0, 1, 2, 1]  # one-hot rows
    dense = np.zeros((2, 4, 4, 3), np.float32)
    assert match_labels(np.zeros((2, 4, 4)), dense).kind == "dense_classes"
    assert match_labels(np.zeros((2, 4, 4, 1)), dense).y.shape == (2, 4, 4)
    assert match_labels(np.full((4, 3), 0.5), scores).kind == "values"  # soft targets: regression
    assert match_labels(np.array([0, 1, 1, 0]), np.array([[0.1], [0.9], [0.7], [0.2]])).kind == "binary"
    assert match_labels(np.array([0.5, 3.0, 1.0, 2.0]), np.ones((4, 1))).kind == "values"
    with pytest.raises(ConfigError, match=r"do not fit its shape.*\(4, 2\) for an output of shape \(4, 3\)"):
        match_labels(np.zeros((4, 2)), scores)
    with pytest.raises(ConfigError, match="from 0 to 2"):
        match_labels(np.array([0, 1, 5, 1]), scores)
    binary = compare_outputs([np.array([[0.2], [0.8]])], [np.array([[0.3], [0.6]])],
                             [match_labels(np.array([0, 1]), np.array([[0.3], [0.6]]))])
    assert binary.top1_agreement == 1.0 and binary.accuracy == 1.0


@given(hnp.arrays(st.sampled_from([np.float32, np.int64, np.bool_]), hnp.array_shapes(min_dims=1, max_dims=4,
                                                                                      max_side=4)),
       hnp.array_shapes(min_dims=1, max_dims=4, max_side=4))
@settings(max_examples=300, deadline=None)
def test_any_labels_are_read_or_refused_with_one_config_error(y, shape):
    reference = np.random.default_rng(0).random(shape).astype(np.float32)
    try:
        labels = match_labels(y, reference)
    except ConfigError as exc:
        assert "\n" not in str(exc) and "Received" in str(exc)
        return
    result = compare_outputs([reference], [reference], [labels])
    assert result.max_abs_error == 0.0 and result.outputs[0].kind == labels.kind


def test_int4_that_breaks_falls_back_per_op_and_says_so(digits, tmp_path):
    """A huge weight row ruins any 4-bit scale of its layer: int4 keeps that layer at int8
    weights or float32 (int4 on the rest) and the entry says so (issue 16; before, it was
    kept broken with a warning)."""
    model = outlier_dense_model(digits)
    with pytest.warns(UserWarning, match="int4: int4 fell back"):
        report = export_tflite(model, ["int4", "dynamic"], output_dir=tmp_path,
                               eval_data=(digits.x_test, digits.y_test))
    entry = report["int4"]
    assert entry.status == "ok" and entry.settings["tool"] == "ai-edge-quantizer"
    assert "top-1 agreement with float32" in entry.settings["fallback_reason"]
    assert [f["index"] for f in entry.settings["per_op_fallback"]] == [0]  # the outlier layer only
    assert entry.validation["top1_agreement"] >= 0.95
    assert "op 0 at" in entry.warning and "int4 elsewhere" in entry.warning
    assert report["dynamic"].warning is None  # it fell back to the converter instead
    saved = json.loads((tmp_path / "export_report.json").read_text())
    assert saved["entries"][0]["warning"] == entry.warning

    from edgeopt.cli import cli

    model.save(tmp_path / "outlier.keras")
    np.savez(tmp_path / "test.npz", x=digits.x_test, y=digits.y_test)
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "outlier.keras"), "-p", "int4", "--eval-data",
                                      str(tmp_path / "test.npz"), "-o", str(tmp_path / "cli"), "-q"])
    assert result.exit_code == 0, result.output
    assert "Warning: int4: int4 fell back" in result.output


def test_a_good_int4_has_no_warning(regression, tmp_path):
    model, x, y = regression
    report = export_tflite(model, ["int4"], output_dir=tmp_path, eval_data=(x, y))
    assert report["int4"].status == "ok"
    assert report["int4"].validation["outputs"][0]["relative_error"] < 0.05 and report["int4"].warning is None
