"""The CLI through click's CliRunner: real exports, one-line errors, exit codes."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgeopt.cli
from edgeopt.cli import cli


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def test_every_command_has_help_with_an_example():
    def walk(group, prefix=()):
        for name, command in group.commands.items():
            yield prefix + (name,), command
            if hasattr(command, "commands"):
                yield from walk(command, prefix + (name,))

    commands = list(walk(cli))
    assert {c[0][0] for c in commands} >= {"export", "inspect"}
    for path, _ in commands:
        result = run(*path, "--help")
        assert result.exit_code == 0, path
        assert "Example" in result.output, path


def test_export_and_inspect(data_files, tmp_path):
    out = tmp_path / "out"
    result = run("export", data_files / "model.keras", "-p", "float32", "-p", "int8", "--calibration-data",
                 data_files / "calib.npz", "--eval-data", data_files / "test.npz", "--out", out)
    assert result.exit_code == 0, result.output
    assert "int8" in result.output and "Keras model accuracy" in result.output
    assert (out / "model.int8.tflite").is_file() and (out / "export_report.json").is_file()

    result = run("inspect", out / "model.int8.tflite")
    assert result.exit_code == 0
    assert "fully integer: yes" in result.output and "CONV_2D+RELU" in result.output

    result = run("inspect", out / "model.int8.tflite", "--json")
    data = json.loads(result.output)
    assert data["fully_integer"] and data["inputs"][0]["dtype"] == "int8"


def test_export_json(data_files, tmp_path):
    result = run("export", data_files / "model.keras", "-p", "float16", "--eval-data", data_files / "test.npz",
                 "--output", tmp_path, "--json", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["entries"][0]["precision"] == "float16"
    assert report["entries"][0]["validation"]["top1_agreement"] >= 0.99


def test_accuracy_gate_exit_code(digits, tmp_path):
    from tests.conftest import outlier_dense_model

    outlier_dense_model(digits).save(tmp_path / "outlier.keras")
    np.savez(tmp_path / "test.npz", x=digits.x_test, y=digits.y_test)
    result = run("export", tmp_path / "outlier.keras", "-p", "int8", "--calibration-data", tmp_path / "test.npz",
                 "--eval-data", tmp_path / "test.npz", "--max-accuracy-drop", "2", "--output", tmp_path / "out", "-q")
    assert result.exit_code == 1
    assert "rejected" in result.output
    assert result.stderr.strip().startswith("Error: int8 lost more than 2.0 accuracy points")
    assert (tmp_path / "out" / "outlier.int8.tflite.rejected").is_file()


def _bad_inputs(data_files, tmp):
    model = data_files / "model.keras"
    (tmp / "not_a_model").mkdir()
    (tmp / "empty.tflite").write_bytes(b"")
    (tmp / "trunc.tflite").write_bytes(b"\x00\x00\x10\x00TFL3" + b"\x00" * 16)
    (tmp / "random.tflite").write_bytes(np.random.default_rng(0).bytes(2048))
    np.savez(tmp / "shape.npz", x=np.zeros((4, 28, 28, 1), np.float32))
    np.savez(tmp / "dtype.npz", x=np.zeros((4, 8, 8, 1), np.uint8))
    np.savez(tmp / "nan.npz", x=np.full((4, 8, 8, 1), np.nan, np.float32))
    np.savez(tmp / "zero.npz", x=np.zeros((0, 8, 8, 1), np.float32))
    (tmp / "a_file").write_text("")
    return {
        "missing model": (["export", tmp / "nope.keras"], "Model not found"),
        "dir not SavedModel": (["export", tmp / "not_a_model"], "not a SavedModel"),
        "empty tflite": (["inspect", tmp / "empty.tflite"], "is empty"),
        "truncated tflite": (["inspect", tmp / "trunc.tflite"], "truncated"),
        "random tflite": (["inspect", tmp / "random.tflite"], "no 'TFL3' identifier"),
        "wrong shape": (["export", model, "-p", "int8", "--calibration-data", tmp / "shape.npz"], "wrong shape"),
        "wrong dtype": (["export", model, "-p", "int8", "--calibration-data", tmp / "dtype.npz"], "dtype uint8"),
        "nan": (["export", model, "-p", "int8", "--calibration-data", tmp / "nan.npz"], "NaN or Inf"),
        "zero samples": (["export", model, "-p", "int8", "--calibration-data", tmp / "zero.npz"], "zero samples"),
        "unwritable output": (["export", model, "--output", tmp / "a_file" / "sub"], "cannot be written"),
        "int8 without calibration": (["export", model, "-p", "int8"], "need calibration data"),
    }


@pytest.mark.parametrize("case", ["missing model", "dir not SavedModel", "empty tflite", "truncated tflite",
                                  "random tflite", "wrong shape", "wrong dtype", "nan", "zero samples",
                                  "unwritable output", "int8 without calibration"])
def test_bad_input_is_one_line_and_exit_1(data_files, tmp_path, case):
    args, message = _bad_inputs(data_files, tmp_path)[case]
    out = tmp_path / "out"
    if args[0] == "export" and "--output" not in args:
        args = args + ["--output", out]
    result = run(*args, "-q") if args[0] == "export" else run(*args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert "Received" in lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_unknown_precision_is_a_usage_error(data_files):
    result = run("export", data_files / "model.keras", "-p", "int3")
    assert result.exit_code == 2
    assert "'int3' is not one of" in result.stderr


def _lambda_h5(tmp):
    from edgeopt._keras import keras_module
    from tests.test_model_code import _writes_marker

    tk = keras_module("tf_keras")
    tk.Sequential([tk.Input((4,)), tk.layers.Lambda(_writes_marker(str(tmp / "ran")))]).save(tmp / "evil.h5")
    (tmp / "ran").unlink()
    return ["export", tmp / "evil.h5"]


def _saved_model(tmp):
    from tests.test_model_code import _WritingModule

    _WritingModule.save(tmp / "sm", tmp / "ran")
    return ["export", tmp / "sm"]


def _corrupt_image(tmp, model):
    from PIL import Image

    (tmp / "images").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp / "images" / "ok.png")
    (tmp / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return ["export", model, "-p", "int8", "--calibration-data", tmp / "images"]


def _float_labels(tmp, model):
    np.savez(tmp / "eval.npz", x=np.zeros((4, 8, 8, 1), np.float32), y=np.array([0.5, 1, 2, 3]))
    return ["export", model, "--eval-data", tmp / "eval.npz"]


HOSTILE = {
    "lambda in tf_keras h5": (lambda tmp, model: _lambda_h5(tmp), "Lambda layer (Python code)"),
    "saved model without --unsafe": (lambda tmp, model: _saved_model(tmp), "SavedModel runs its own"),
    "name escapes --output": (lambda tmp, model: ["export", model, "--name", "../escaped"], "plain file stem"),
    "corrupt image": (_corrupt_image, "broken.png"),
    "non-integer labels": (_float_labels, "non-integer"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input_is_one_line_and_exit_1(data_files, tmp_path, case):
    build, message = HOSTILE[case]
    out = tmp_path / "out"
    result = run(*build(tmp_path, data_files / "model.keras"), "--output", out, "-q")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert "Received" in lines[0]
    if case in ("lambda in tf_keras h5", "saved model without --unsafe"):
        assert "Pass --unsafe (unsafe=True)" in lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "ran").exists()  # no code from the model ran
    assert not out.exists() or not any(out.iterdir())
    assert not (tmp_path / "escaped.float32.tflite").exists()


def test_disk_full_is_one_line_and_no_partial_file(data_files, tmp_path, monkeypatch):
    import errno
    import os

    from edgeopt import _files

    real_write = os.write

    def full(fd, data):
        real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_files.os, "write", full)
    result = run("export", data_files / "model.keras", "--output", tmp_path / "out", "-q")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Cannot write an output file: No space left on device")
    assert list((tmp_path / "out").iterdir()) == []


CLI_DIR = Path(edgeopt.cli.__file__).parent


def commands(group=cli, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from commands(command, prefix + (name,))
        else:
            yield prefix + (name,), command


def test_shared_options_are_declared_once():
    shared = {"--json", "--quiet", "-q", "--device", "-d", "--unsafe", "--out", "--output", "-o"}
    for path in sorted(CLI_DIR.glob("*.py")):
        if path.name == "_options.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "option":
                flags = {a.value for a in node.args if isinstance(a, ast.Constant)} & shared
                assert not flags, f"{path.name} declares {flags}; use edgeopt.cli._options"

    by_name = {}
    for _, command in commands():
        for param in command.params:
            if param.name in ("as_json", "quiet", "devices", "unsafe"):
                by_name.setdefault(param.name, set()).add((tuple(param.opts), param.multiple, param.is_flag))
    assert by_name == {"as_json": {(("--json",), False, True)}, "quiet": {(("-q", "--quiet"), False, True)},
                       "devices": {(("-d", "--device"), True, False)}, "unsafe": {(("--unsafe",), False, True)}}


def test_the_output_flag_has_one_name_everywhere():
    """bench writes a file there, run/search/export a directory: all spell it -o/--out;
    export's old --output still works but is not shown."""
    spelled = {}
    for path, command in commands():
        for param in command.params:
            if any(opt in ("-o", "--out", "--output") for opt in param.opts):
                spelled[path] = tuple(param.opts)
    assert set(spelled) == {("bench",), ("run",), ("search",), ("export",), ("sensitivity",)}
    assert set(spelled.values()) == {("-o", "--out", "--output")}
    for path in spelled:
        help_text = run(*path, "--help").output
        assert "-o, --out" in help_text and "--output" not in help_text, path


def _private_imports(source: str) -> list[str]:
    """What `source` imports that is private to another edgeopt package: a `_name` from
    a module outside edgeopt.cli, or a module of a subpackage whose name starts with `_`
    (edgeopt's own top-level `_x` modules are the package's shared internals)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "edgeopt":
            modules, names = [node.module], [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            modules, names = [a.name for a in node.names if a.name.split(".")[0] == "edgeopt"], []
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[:2] == ["edgeopt", "cli"]:
                continue
            found += [f"{name} from {module}" for name in names if name.startswith("_") and not name.startswith("__")]
            found += [module] if any(p.startswith("_") for p in parts[2:]) else []
    return found


def test_cli_imports_no_private_names_from_other_packages():
    for path in sorted(CLI_DIR.glob("*.py")):
        private = _private_imports(path.read_text())
        assert not private, f"{path.name} imports {private}"


@pytest.mark.parametrize("source, found", [
    ("from edgeopt.bench.harness import _plan", ["_plan from edgeopt.bench.harness"]),
    ("from edgeopt import _keras", ["_keras from edgeopt"]),
    ("import edgeopt.convert._helpers", ["edgeopt.convert._helpers"]),
    ("from edgeopt.convert._helpers import x", ["edgeopt.convert._helpers"]),
    ("def f():\n    from edgeopt.pipeline.run import _stage", ["_stage from edgeopt.pipeline.run"]),
    ("from edgeopt.cli._options import json_option", []),
    ("from edgeopt.bench.harness import benchmark", []),
    ("from os import _exit", []),
])
def test_the_private_import_scan_sees_every_form(source, found):
    assert _private_imports(source) == found
