"""inspect_tflite on real converted models, and on broken files that must not crash."""

from __future__ import annotations

import random

import pytest

from edgeopt import InvalidModelError, export_tflite, inspect_tflite


@pytest.fixture(scope="module")
def models(keras3_model, digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("inspect")
    report = export_tflite(keras3_model, ["float32", "dynamic", "int8"], output_dir=out,
                           calibration_data=digits.x_train[:50])
    return {e.precision: e.path for e in report.entries}


def test_float_model(models):
    info = inspect_tflite(models["float32"])
    assert info.inputs[0].shape == [-1, 8, 8, 1] and info.inputs[0].dtype == "float32"
    assert info.outputs[0].shape == [-1, 10]
    assert info.op_counts["CONV_2D"] == 2 and info.op_counts["FULLY_CONNECTED"] == 2
    # Conv-BN-ReLU folds into one CONV_2D with a fused RELU
    assert info.fused_activations["CONV_2D+RELU"] == 2
    assert info.parameters[0].size_bytes >= info.parameters[-1].size_bytes
    assert info.parameter_bytes == sum(p.size_bytes for p in info.parameters)
    assert not info.fully_integer and set(info.weight_dtypes) <= {"float32", "int32"}


def test_int8_model(models):
    info = inspect_tflite(models["int8"])
    assert info.fully_integer and info.integer_io and info.float_ops == {}
    conv_weights = [p for p in info.parameters if len(p.shape) == 4]
    assert conv_weights and all(p.dtype == "int8" for p in conv_weights)
    out = info.outputs[0]
    assert out.dtype == "int8" and out.scale[0] > 0


def test_dynamic_model_lists_float_ops(models):
    info = inspect_tflite(models["dynamic"])
    assert not info.fully_integer
    assert info.float_ops.get("FULLY_CONNECTED") == 2
    assert info.weight_dtypes.get("int8", 0) >= 1


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (bytes(random.Random(0).randrange(256) for _ in range(4096)), "no 'TFL3' identifier"),
        (b"\x00\x00\x10\x00TFL3" + b"\x00" * 16, "truncated"),
    ],
)
def test_broken_files(tmp_path, content, message):
    path = tmp_path / "broken.tflite"
    path.write_bytes(content)
    with pytest.raises(InvalidModelError, match=message):
        inspect_tflite(path)


def test_every_truncation_and_corruption_is_an_error_not_a_crash(models):
    data = open(models["int8"], "rb").read()
    for cut in range(0, len(data) - 1, max(1, len(data) // 60)):
        with pytest.raises(InvalidModelError):
            inspect_tflite(data[:cut])
    rng = random.Random(1)
    for _ in range(100):
        corrupt = bytearray(data)
        for _ in range(30):
            corrupt[rng.randrange(8, len(corrupt))] = rng.randrange(256)
        try:
            inspect_tflite(bytes(corrupt))
        except InvalidModelError:
            pass


def test_missing_file(tmp_path):
    with pytest.raises(InvalidModelError, match="not found"):
        inspect_tflite(tmp_path / "nope.tflite")
