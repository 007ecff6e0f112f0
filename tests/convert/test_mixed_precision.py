"""Per-op sensitivity and `auto` precision on a model with one deliberately fragile layer.

The fixture is `outlier_dense_model`: its first Dense layer holds a weight of 1000
(on a pixel that is always 0, so float accuracy is intact) that ruins every 8- or
4-bit scale of that layer; the second layer is ordinary.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeopt.convert import mixed
from edgeopt.convert.arguments import validate_export_args
from edgeopt.convert.auto_precision import choose
from edgeopt.convert.conversion import run_in_order
from edgeopt.convert.interpreter import TfliteRunner
from edgeopt.convert.mixed import MixedQuantizer
from edgeopt.convert.precision import Precision
from edgeopt.convert.sensitivity import Evaluator, measure, snr_db, summarize
from edgeopt.convert.validate import match_labels
from edgeopt.errors import ConfigError
from tests.conftest import outlier_dense_model


@pytest.fixture(scope="module")
def fragile(digits):
    """(float32 .tflite bytes, Keras reference outputs on the test split, labels) of the outlier MLP."""
    import tensorflow as tf

    model = outlier_dense_model(digits)
    data = bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    reference = [model.predict(digits.x_test, verbose=0)]
    return data, reference


def _tools(fragile, digits):
    data, reference = fragile
    runner = TfliteRunner(data)
    inputs, outputs = runner.input_names, runner.output_names
    quantizer = MixedQuantizer(data, [digits.x_train[:200]])
    labels = [match_labels(digits.y_test, reference[0])]
    evaluate = Evaluator(lambda d, xs: run_in_order(d, xs, inputs, outputs), [digits.x_test], reference, labels,
                         outputs)
    return quantizer, evaluate


def test_regions_cut_at_weight_ops(fragile, digits):
    quantizer, _ = _tools(fragile, digits)
    regions = quantizer.regions
    assert [r.op_type for r in regions] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert [r.weights for r in regions] == [64 * 32, 32 * 10]
    assert len(regions[0].scopes) >= 2  # the reshape before the first weight op joins the first region
    assert len(regions[1].scopes) >= 2  # the softmax after the last one joins it
    choice = {0: Precision.FLOAT32, 1: Precision.INT8}
    assert mixed.boundaries(regions, choice) == 1
    assert mixed.estimated_bytes(regions, choice) == 2048 * 4 + 320


def test_sensitivity_ranks_the_fragile_layer_first(fragile, digits):
    import time

    quantizer, evaluate = _tools(fragile, digits)
    rows = measure(quantizer, evaluate)
    result = summarize("outlier", rows, evaluate, quantizer, time.perf_counter())
    for scheme in ("int8", "int4", "int16x8"):
        ranking = result.ranking(scheme)
        assert ranking[0].index == 0, scheme
        assert ranking[0].accuracy_drop_points > 20
        assert ranking[1].accuracy_drop_points < 3
    assert result.most_sensitive().index == 0
    by = {(r.index, r.precision): r for r in rows}
    assert by[(0, "int8")].layer_snr_db < 10 < by[(1, "int8")].layer_snr_db  # the op's own output, in dB
    assert by[(0, "int8")].output_snr_db < by[(1, "int8")].output_snr_db
    assert result.reference_accuracy > 0.85
    table = result.table_rows()
    assert table[0][0] == 0 and len(table) == 2
    assert result.png()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.to_dict()["ranking"]["int8"] == [0, 1]


def test_auto_keeps_the_fragile_layer_at_higher_precision_and_meets_the_budget(fragile, digits):
    quantizer, evaluate = _tools(fragile, digits)
    decision = choose(quantizer, evaluate, 1.0)
    chosen = {c["index"]: c["precision"] for c in decision.choices}
    assert chosen[0] == "float32"
    assert chosen[1] in ("int4", "int8")
    assert "alone costs" in decision.choices[0]["reason"]
    # The budget, measured again here, independently of the search.
    out = TfliteRunner(decision.data).run(digits.x_test)
    reference_accuracy = np.mean(fragile[1][0].argmax(-1) == digits.y_test)
    accuracy = np.mean(out.argmax(-1) == digits.y_test)
    assert 100 * (reference_accuracy - accuracy) <= 1.0
    assert decision.accuracy_drop_points <= 1.0
    assert len(decision.data) < len(quantizer.float_model)
    assert decision.evaluations <= 3 * len(quantizer.regions) + 8


def test_auto_with_a_generous_budget_is_all_int4_and_smallest(fragile, digits):
    quantizer, evaluate = _tools(fragile, digits)
    decision = choose(quantizer, evaluate, 100.0)
    assert {c["precision"] for c in decision.choices} == {"int4"}
    int8 = quantizer.quantize({r.index: Precision.INT8 for r in quantizer.regions})
    assert len(decision.data) < len(int8)
    assert decision.boundaries == 0


def test_snr_db():
    signal = np.linspace(-1, 1, 101)
    assert snr_db(signal, signal) == 200.0
    expected = 10 * np.log10(np.mean(signal ** 2) / 0.01)
    assert abs(snr_db(signal + 0.1 * np.sign(signal + 1e-9), signal) - expected) < 1e-6
    assert np.isnan(snr_db(signal[:3], signal))


def test_auto_needs_a_budget():
    with pytest.raises(ConfigError, match="auto needs an accuracy budget.*max-accuracy-drop"):
        validate_export_args(precisions=["float32", "auto"])
    validate_export_args(precisions=["auto"], max_accuracy_drop=1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([p.value for p in Precision] + ["AUTO", "Int4"]), min_size=1, max_size=4),
       st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.booleans(),
                 st.text(max_size=3)))
def test_budget_and_precision_validation_never_crashes(precisions, budget):
    """Whatever a recipe or the CLI hands over: accepted, or one ConfigError."""
    try:
        validate_export_args(precisions=precisions, max_accuracy_drop=budget)
    except ConfigError as exc:
        assert "Received:" in str(exc)
        auto = any(p.lower() == "auto" for p in precisions)
        good_budget = (isinstance(budget, (int, float)) and not isinstance(budget, bool) and np.isfinite(budget)
                       and budget >= 0)
        assert not good_budget or (auto and budget is None)
    else:
        assert budget is None or budget >= 0
        assert budget is not None or not any(p.lower() == "auto" for p in precisions)


@pytest.mark.slow
def test_export_auto_report_lists_per_op_choices(digits, tmp_path):
    """export_tflite(precisions=["auto"]): the file meets the budget end to end and
    export_report.json says, per op, what was chosen and why, with latency next to int8."""
    import json

    from edgeopt.convert.exporter import export_tflite

    model = outlier_dense_model(digits)
    report = export_tflite(model, ["auto"], output_dir=tmp_path, calibration_data=digits.x_train[:200],
                           eval_data=(digits.x_test, digits.y_test), max_accuracy_drop=1.0)
    saved = json.loads((tmp_path / "export_report.json").read_text())
    (entry,) = saved["entries"]
    assert entry["precision"] == "auto" and entry["status"] == "ok"
    assert entry["validation"]["accuracy_drop_points"] <= 1.0
    choices = entry["settings"]["choices"]
    assert [c["precision"] for c in choices][0] == "float32"
    assert all(c["reason"] and c["op"] and c["op_type"] == "FULLY_CONNECTED" for c in choices)
    assert entry["settings"]["recipe"] and entry["settings"]["search"].startswith("greedy")
    latency = entry["settings"]["latency"]
    assert latency["auto_p50_ms"] > 0 and latency["uniform_int8_p50_ms"] > 0, latency
    assert (tmp_path / "outlier_mlp.auto.tflite").is_file()
    assert report["auto"].size_bytes == (tmp_path / "outlier_mlp.auto.tflite").stat().st_size


def test_search_passes_a_budget_to_auto():
    from edgeopt.search.objective import _auto_budget

    assert _auto_budget("int8", 2.0) == {}
    assert _auto_budget("auto", 2.0) == {"max_accuracy_drop": 2.0}
    assert _auto_budget("auto", None) == {"max_accuracy_drop": 1.0}


@pytest.mark.slow
def test_auto_on_two_inputs_with_a_fixed_batch(tmp_path):
    """Inputs whose sorted names differ from their signature order, a fixed batch of 8 and
    calibration data that is not a multiple of it: auto still fits its budget."""
    import keras

    from edgeopt.convert.exporter import export_tflite

    keras.utils.set_random_seed(0)
    zeta, alpha = keras.Input((6,), batch_size=8, name="zeta"), keras.Input((3,), batch_size=8, name="alpha")
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([zeta, 100.0 * alpha]))
    model = keras.Model([zeta, alpha], keras.layers.Dense(3, activation="softmax")(hidden))
    rng = np.random.default_rng(0)
    x_zeta, x_alpha = rng.random((203, 6), dtype=np.float32), 0.01 * rng.random((203, 3), dtype=np.float32)
    y = (x_zeta[:, 0] + 100 * x_alpha[:, 0] > 1.0).astype(int) + (x_zeta[:, 1] > 0.5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit([x_zeta[:160], x_alpha[:160]], y[:160], epochs=30, batch_size=8, verbose=0)
    report = export_tflite(model, ["auto"], output_dir=tmp_path, calibration_data=(x_zeta[:45], x_alpha[:45]),
                           eval_data=((x_zeta[160:], x_alpha[160:]), y[160:]), max_accuracy_drop=2.0)
    entry = report["auto"]
    assert entry.status == "ok" and entry.validation["accuracy_drop_points"] <= 2.0
    assert len(entry.settings["choices"]) == 2


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(["auto", "int8", "int4", "Auto", "bogus", ""]), max_size=3),
                 st.sampled_from(["auto", "int4"]), st.integers(), st.none()),
       st.one_of(st.none(), st.floats(), st.integers(-3, 3), st.text(max_size=2), st.booleans()))
def test_a_recipe_export_section_with_auto_is_accepted_or_one_config_error(precisions, budget):
    """What a YAML export section can hold: parsed as export_tflite would take it, or one ConfigError."""
    from pathlib import Path

    from edgeopt.pipeline.sections import parse_export

    section = {"precisions": precisions, "max_accuracy_drop": budget}
    try:
        parsed = parse_export(section, Path("recipe.yaml"))
    except ConfigError as exc:
        assert "recipe.yaml" in str(exc) and "Received" in str(exc) and "\n" not in str(exc)
    else:
        assert "auto" not in parsed["precisions"] or parsed["max_accuracy_drop"] is not None
