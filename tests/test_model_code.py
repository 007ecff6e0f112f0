"""Untrusted model files: code in a model config is refused before Keras deserializes it.

The hostile files are real ones written by tf_keras and Keras 3. Their Lambda layers
write a marker file when they run, so each test proves the code did not run.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeopt import InvalidModelError, export_tflite
from edgeopt._keras import flavour_of, keras_module, load_model
from edgeopt._model_code import find_code, read_config, refuse_code
from edgeopt.convert.source import SavedModelSource, open_source


def _writes_marker(marker: str):
    """A lambda (serialized as bytecode) that writes `marker` whenever it runs."""
    return lambda t: (open(marker, "w").write("ran"), t * 2.0)[1]


def _lambda_model(flavour: str, marker: Path, nested: bool):
    k = keras_module(flavour)
    layer = k.layers.Lambda(_writes_marker(str(marker)), name="evil")
    if not nested:
        return k.Sequential([k.Input((4,)), layer, k.layers.Dense(2)], name="plain")
    inner = k.Sequential([k.Input((4,)), k.layers.Dense(4), layer], name="inner")
    middle = k.Sequential([k.Input((4,)), inner], name="middle")
    inputs = k.Input((4,))
    return k.Model(inputs, k.layers.Dense(2)(middle(inputs)), name="outer")


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory):
    """{(flavour, suffix, nested): (path, marker)}; the markers are removed after saving."""
    root = tmp_path_factory.mktemp("hostile")
    files = {}
    for flavour in ("keras3", "tf_keras"):
        for suffix in (".keras", ".h5"):
            for nested in (False, True):
                stem = f"{flavour}_{'nested' if nested else 'plain'}"
                marker = root / f"{stem}{suffix}.ran"
                path = root / f"{stem}{suffix}"
                _lambda_model(flavour, marker, nested).save(path)
                marker.unlink(missing_ok=True)  # building the model ran the Lambda once
                files[flavour, suffix, nested] = path, marker
    return files


CASES = [(f, s, n) for f in ("keras3", "tf_keras") for s in (".keras", ".h5") for n in (False, True)]


@pytest.mark.parametrize("flavour, suffix, nested", CASES)
def test_lambda_bytecode_is_refused_and_never_runs(hostile_files, flavour, suffix, nested):
    path, marker = hostile_files[flavour, suffix, nested]
    with pytest.raises(InvalidModelError, match=r"Lambda layer \(Python code\) 'evil'.*--unsafe") as caught:
        load_model(path)
    if nested:
        assert "'inner'" in str(caught.value)
    assert not marker.exists(), "the Lambda's bytecode ran"
    with pytest.raises(InvalidModelError, match="Lambda layer"):
        export_tflite(path, ["float32"], output_dir=path.parent / f"out_{path.name}")
    assert not marker.exists()
    assert not (path.parent / f"out_{path.name}").exists()


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_unsafe_loads_the_lambda_model(hostile_files, suffix):
    path, marker = hostile_files["tf_keras", suffix, True]
    model = load_model(path, unsafe=True)
    assert flavour_of(model) == "tf_keras"
    model.predict(np.ones((1, 4), np.float32), verbose=0)
    assert marker.read_text() == "ran"  # the marker mechanism works: only --unsafe runs it
    marker.unlink()


def test_safe_models_of_both_flavours_still_load(tmp_path):
    import tensorflow as tf

    tk = keras_module("tf_keras")
    inputs = tk.Input((4,))
    ops = tf.nn.relu(inputs) * 2.0  # TFOpLambda layers: pure TensorFlow maths
    tk.Model(inputs, ops[:, :2]).save(tmp_path / "ops.h5")
    assert load_model(tmp_path / "ops.h5").output_shape == (None, 2)
    k = keras_module("keras3")
    inner = k.Sequential([k.Input((4,)), k.layers.Dense(3, activation="gelu")], name="inner")
    inputs = k.Input((4,))
    k.Model(inputs, k.layers.Dense(2)(inner(inputs))).save(tmp_path / "nested.keras")
    assert load_model(tmp_path / "nested.keras").output_shape == (None, 2)


def _edit_h5_config(path: Path, old: str, new: str) -> None:
    with h5py.File(path, "r+") as handle:
        text = handle.attrs["model_config"]
        text = text.decode() if isinstance(text, bytes) else text
        assert old in text
        handle.attrs["model_config"] = text.replace(old, new)


@pytest.mark.parametrize("symbol", ["io.write_file", "load_op_library", "compat.v1.py_func", "raw_ops.WriteFile",
                                    "io.gfile.rmtree"])
def test_tf_op_layer_with_side_effects_is_refused(tmp_path, symbol):
    import tensorflow as tf

    tk = keras_module("tf_keras")
    inputs = tk.Input((4,))
    tk.Model(inputs, tf.nn.relu(inputs)).save(tmp_path / "ops.h5")
    _edit_h5_config(tmp_path / "ops.h5", '"function": "nn.relu"', f'"function": "{symbol}"')
    with pytest.raises(InvalidModelError, match=rf"op layer calling tf\.{symbol}"):
        load_model(tmp_path / "ops.h5")


def test_foreign_module_in_keras_config_is_refused(tmp_path):
    """tf_keras imports whatever module a .keras config names, even in safe mode."""
    tk = keras_module("tf_keras")
    tk.Sequential([tk.Input((4,)), tk.layers.Dense(2)]).save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["config"]["activation"] = {
        "module": "antigravity", "class_name": "function", "config": "geohash", "registered_name": None}
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(InvalidModelError, match="module 'antigravity'"):
        load_model(tmp_path / "m.keras")


@pytest.mark.parametrize(
    "config, found",
    [
        ({"class_name": "Dense", "config": {"name": "d", "activation": "relu"}}, None),
        ({"class_name": "keras.layers.Lambda", "config": {"name": "x"}}, "Lambda layer"),
        ({"class_name": "Custom>Lambda", "config": {}}, "Lambda layer"),
        ({"class_name": "Dense", "config": {"activation": {"class_name": "__lambda__", "config": {"value": "x"}}}},
         "serialized Python lambda"),
        ({"class_name": "MyLayer", "config": {"fn": {"function_type": "lambda", "function": ["AAA", None, None]}}},
         "marshalled Python bytecode"),
        ({"class_name": "TFSMLayer", "config": {"filepath": "/tmp/sm"}}, "TFSMLayer"),
        ({"class_name": "function", "module": "keras.utils", "config": "get_file"}, "not a modelling function"),
        ({"class_name": "ClassMethod", "config": {"cls_symbol": "io.gfile.GFile", "method_name": "x"}},
         "class-method layer"),
        ({"class_name": "InstanceProperty", "config": {"attr_name": "__class__"}}, "tensor attribute '__class__'"),
        ({"class_name": "TFOpLambda", "config": {"function": "math.add"}}, None),
        ({"class_name": "TFOpLambda", "config": {"function": "reshape"}}, None),
        ({"class_name": "TFOpLambda", "config": {"function": "print"}}, "op layer calling tf.print"),
        ([[[{"layers": [{"class_name": "Lambda"}]}]]], "Lambda layer"),
    ],
)
def test_find_code_rules(config, found):
    result = find_code(config)
    assert result is None if found is None else found in result


def test_deep_nesting_is_handled_without_recursion():
    config: dict = {"class_name": "Lambda", "config": {"name": "deep"}}
    for _ in range(50_000):
        config = {"class_name": "Sequential", "config": {"layers": [config]}}
    assert "Lambda layer" in find_code(config)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["Lambda", "__lambda__", "lambda", "TFOpLambda", "class_name", "module", "function"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["class_name", "config", "module", "function", "function_type", "name",
                                       "registered_name", "layers", "cls_symbol", "attr_name"]) | st.text(max_size=4),
                      children, max_size=5),
    max_leaves=30,
)


@given(_json)
@settings(max_examples=300, deadline=None)
def test_find_code_on_any_json_returns_a_finding_or_none(config):
    result = find_code(config)
    assert result is None or isinstance(result, str)


def _zip_with_config(data: bytes) -> bytes:
    with tempfile.SpooledTemporaryFile() as raw:
        with zipfile.ZipFile(raw, "w") as archive:
            archive.writestr("config.json", data)
        raw.seek(0)
        return raw.read()


@given(st.sampled_from([".keras", ".h5"]), st.sampled_from(["raw", "zip", "h5attr"]), st.binary(max_size=300))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_bytes_are_safe_or_invalid_model(suffix, container, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"m{suffix}"
        if container == "zip":
            path.write_bytes(_zip_with_config(data))
        elif container == "h5attr":
            with h5py.File(path, "w") as handle:
                handle.attrs["model_config"] = np.void(data) if b"\x00" in data else data
        else:
            path.write_bytes(data)
        try:
            refuse_code(path)
        except InvalidModelError as exc:
            assert "Received" in str(exc)


def test_oversized_config_is_refused(tmp_path, monkeypatch):
    import edgeopt._model_code as model_code

    monkeypatch.setattr(model_code, "MAX_CONFIG_BYTES", 10)
    (tmp_path / "m.keras").write_bytes(_zip_with_config(b'{"class_name": "Dense"}'))
    with pytest.raises(InvalidModelError, match="over 0 MiB"):
        read_config(tmp_path / "m.keras")


class _WritingModule:
    """A SavedModel whose serving function writes a marker file when it runs."""

    @staticmethod
    def save(directory: Path, marker: Path) -> None:
        import tensorflow as tf

        class Module(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
            def serve(self, x):
                tf.io.write_file(str(marker), "ran")
                return {"y": x * 2.0}

        module = Module()
        tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})


def test_saved_model_needs_unsafe_and_never_runs(tmp_path):
    marker = tmp_path / "sm.ran"
    _WritingModule.save(tmp_path / "sm", marker)
    assert not marker.exists()
    with pytest.raises(InvalidModelError, match=r"SavedModel runs its own TensorFlow graph.*--unsafe \(unsafe=True\)"):
        export_tflite(tmp_path / "sm", ["float32"], output_dir=tmp_path / "out",
                      eval_data=np.ones((2, 4), np.float32))
    with pytest.raises(InvalidModelError, match="--unsafe"):
        SavedModelSource(tmp_path / "sm")
    assert not marker.exists(), "the SavedModel's graph ran"
    assert not (tmp_path / "out").exists()
    source = open_source(tmp_path / "sm", unsafe=True)
    assert source.predict(np.ones((2, 4), np.float32)).tolist() == [[2.0] * 4] * 2
    assert marker.read_text() == "ran"  # with unsafe=True its graph does run
