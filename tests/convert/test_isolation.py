"""One precision's failure must not lose the others (issue 12 item 1).

Conversions and LiteRT runs happen in a child process: real crashes (a LiteRT abort,
a converter segfault), an injected SIGSEGV, a hang past the timeout and a LiteRT
runtime error each fail one entry; the other files and export_report.json survive.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeopt import ConversionError, export_tflite, inspect_tflite
from edgeopt.convert._worker import CRASH_VARIABLE, HANG_VARIABLE
from edgeopt.convert.isolation import describe_exit, parse_status


@pytest.fixture(scope="module")
def samples():
    return np.random.default_rng(0).random((24, 8), dtype=np.float32)


@pytest.fixture(scope="module")
def mlp():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")], name="mlp")


def _failed_export(model, precisions, out, **kwargs) -> dict:
    with pytest.raises(ConversionError) as caught:
        export_tflite(model, precisions, output_dir=out, **kwargs)
    report = caught.value.report
    assert report is not None and (out / "export_report.json").is_file()
    on_disk = json.loads((out / "export_report.json").read_text())
    assert [e["precision"] for e in on_disk["entries"]] == list(precisions)
    return {e.precision: e for e in report.entries}


def test_a_killed_child_fails_only_its_precision(mlp, samples, tmp_path, monkeypatch):
    monkeypatch.setenv(CRASH_VARIABLE, "int8")
    entries = _failed_export(mlp, ["float32", "float16", "int8", "int4"], tmp_path, calibration_data=samples,
                             eval_data=samples)
    crashed = entries["int8"]
    assert crashed.status == "failed" and crashed.path is None
    assert "was killed by SIGSEGV while converting it" in crashed.error and "\n" not in crashed.error
    assert isinstance(crashed.stderr_tail, str)
    assert not (tmp_path / "mlp.int8.tflite").exists()
    for precision in ("float32", "float16", "int4"):  # int4 came from the fresh child started after the crash
        assert entries[precision].status == "ok", entries[precision].error
        assert inspect_tflite(tmp_path / f"mlp.{precision}.tflite").size_bytes == entries[precision].size_bytes
        assert entries[precision].validation["top1_agreement"] >= 0.9


@pytest.mark.slow
def test_a_crash_of_the_float32_base_leaves_the_converter_precisions(mlp, samples, tmp_path, monkeypatch):
    monkeypatch.setenv(CRASH_VARIABLE, "float32")
    entries = _failed_export(mlp, ["float32", "dynamic", "int8", "int4"], tmp_path, calibration_data=samples)
    assert entries["float32"].status == "failed" and "SIGSEGV" in entries["float32"].error
    assert entries["dynamic"].status == "ok" and entries["dynamic"].settings["tool"] == "tflite-converter"
    assert "float32 .tflite failed" in entries["dynamic"].settings["fallback_reason"]
    assert entries["int8"].status == "ok"
    # int4 falls back to the converter's int8 weights, and says so (issue 16)
    assert entries["int4"].status == "ok" and entries["int4"].settings["tool"] == "tflite-converter"
    assert "float32 .tflite failed" in entries["int4"].settings["fallback_reason"]
    assert "int8" in entries["int4"].settings["weights"] and "fell back" in entries["int4"].warning


@pytest.mark.slow
def test_a_hanging_precision_times_out(mlp, samples, tmp_path, monkeypatch):
    monkeypatch.setenv(HANG_VARIABLE, "float16")
    entries = _failed_export(mlp, ["float32", "float16", "dynamic"], tmp_path, eval_data=samples, timeout_s=20)
    assert entries["float16"].status == "failed" and "took longer than timeout_s=20" in entries["float16"].error
    assert entries["float32"].status == entries["dynamic"].status == "ok"


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
def test_a_litert_runtime_error_fails_only_its_precision(samples, tmp_path):
    """A real LiteRT kernel error: int16x8 RMS LayerNormalization has no int16 SQUARED_DIFFERENCE."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.LayerNormalization(rms_scaling=True)(keras.layers.Dense(16)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden), name="rms_norm")
    entries = _failed_export(model, ["float32", "int8", "int16x8"], tmp_path, calibration_data=samples,
                             eval_data=samples)
    error = entries["int16x8"].error
    assert entries["int16x8"].status == "failed"
    assert "LiteRT cannot run the converted model" in error and "SquaredDifference only supports FLOAT32" in error
    assert entries["float32"].status == entries["int8"].status == "ok"
    assert (tmp_path / "rms_norm.int8.tflite").is_file() and not (tmp_path / "rms_norm.int16x8.tflite").exists()


@pytest.mark.slow
def test_a_real_litert_abort_fails_only_its_precision(samples, tmp_path):
    """tf_keras LayerNormalization at int16x8 aborts the LiteRT interpreter (SIGABRT) when it runs."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((8,))
    hidden = tf_keras.layers.LayerNormalization()(tf_keras.layers.Dense(16)(inputs))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(3, activation="softmax")(hidden), name="layer_norm")
    entries = _failed_export(model, ["float32", "int8", "int16x8"], tmp_path, calibration_data=samples,
                             eval_data=samples)
    assert entries["int16x8"].status == "failed"
    assert "was killed by SIGABRT while validating it in LiteRT" in entries["int16x8"].error
    assert entries["float32"].status == entries["int8"].status == "ok"
    assert entries["int8"].validation["top1_agreement"] >= 0.9


@pytest.mark.parametrize("code, text", [(-11, "was killed by SIGSEGV"), (-6, "was killed by SIGABRT"),
                                        (3, "exited with code 3"), (-200, "was killed by signal 200")])
def test_exit_codes_are_named(code, text):
    assert describe_exit(code) == text


_events = st.dictionaries(st.sampled_from(["begin", "step", "say", "done", "finished", "ready"]),
                          st.one_of(st.text(max_size=20), st.integers(), st.none()), max_size=3)


@given(st.lists(st.one_of(_events.map(lambda e: json.dumps(e).encode()), st.binary(max_size=30)), max_size=12),
       st.binary(max_size=20))
@settings(max_examples=300, deadline=None)
def test_status_lines_are_read_whole_and_garbage_skipped(lines, tail):
    """What the child writes to its status pipe: every complete JSON object line, nothing else."""
    tail = tail.replace(b"\n", b"")
    events, rest = parse_status(b"\n".join(lines) + b"\n" + tail)
    assert rest == tail and all(isinstance(e, dict) for e in events)
    wanted = [json.loads(line) for line in lines if b"\n" not in line and _is_object(line)]
    assert events == wanted


def _is_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line.decode("utf-8", errors="replace")), dict)
    except (ValueError, RecursionError):
        return False
