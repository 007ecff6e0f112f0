"""TensorFlow's log noise: hidden from the real `edgeopt` command unless `--verbose`."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeopt import ConversionError, _quiet

REPO = Path(__file__).resolve().parents[1]

# Lines TensorFlow, the TFLite converter and LiteRT print natively on this stack.
NOISE = ["absl::InitializeLog", "oneDNN", "cudart_stub", "cuda_platform", "cpu_feature_guard", "fully_quantize",
         "inference_type", "XNNPACK", "I0000", "W0000", "E0000", "tf_tfl_flatbuffer_helpers"]


def _edgeopt(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "edgeopt.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_real_cli_hides_tensorflow_noise_unless_verbose(data_files, tmp_path):
    args = ["export", data_files / "model.keras", "-p", "float32", "-p", "int8", "--calibration-data",
            data_files / "calib.npz", "--eval-data", data_files / "test.npz"]
    quiet = _edgeopt(*args, "--output", tmp_path / "quiet", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "model.int8.tflite" in quiet.stdout and "converting int8" in quiet.stderr  # results and progress show
    assert [n for n in NOISE if n in quiet.stdout + quiet.stderr] == [], quiet.stderr

    verbose = _edgeopt("--verbose", *args, "--output", tmp_path / "verbose", cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    shown = [n for n in NOISE if n in verbose.stdout + verbose.stderr]
    assert "fully_quantize" in shown and len(shown) >= 3, shown  # the noise is real, and --verbose shows it


@pytest.mark.slow
def test_real_cli_error_after_tensorflow_loaded_is_one_line(data_files, tmp_path):
    np.savez(tmp_path / "shape.npz", x=np.zeros((4, 28, 28, 1), np.float32))
    result = _edgeopt("export", data_files / "model.keras", "-p", "int8", "--calibration-data", tmp_path / "shape.npz",
                      "--output", tmp_path / "out", "-q", cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: The calibration data has the wrong shape"), result.stderr


def test_native_writes_are_captured_not_printed(capfd):
    with _quiet.capture_native_output() as captured:
        os.write(1, b"native stdout\n")
        os.write(2, b"native stderr\n")
        ctypes.CDLL(None).printf(b"from printf %d\n", 42)  # C stdio, buffered
        print("python print")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert all(s in captured.text for s in ("native stdout", "native stderr", "from printf 42", "python print"))
    os.write(1, b"after\n")
    assert capfd.readouterr().out == "after\n"  # the descriptors are restored


def test_hide_keeps_python_output_on_the_terminal(capfd):
    with _quiet.hide_native_output() as hidden:
        os.write(2, b"native noise\n")
        print("python line", file=sys.stderr, flush=True)
    assert "native noise" in hidden.text and "python line" not in hidden.text
    err = capfd.readouterr().err
    assert "native noise" not in err and "python line" in err


def test_verbose_mode_does_not_capture(capfd):
    _quiet.set_verbose(True)
    try:
        with _quiet.capture_native_output() as captured:
            os.write(2, b"shown\n")
    finally:
        _quiet.set_verbose(False)
    assert captured.text == "" and "shown" in capfd.readouterr().err


def test_converter_failure_carries_the_converter_log(tmp_path, capfd):
    from edgeopt.convert import engines
    from edgeopt.convert.precision import Precision
    from tests.test_model_code import _WritingModule

    _WritingModule.save(tmp_path / "sm", tmp_path / "ran")
    capfd.readouterr()
    with pytest.raises(ConversionError, match=r"converter log: .*tf\.WriteFile.*--verbose") as caught:
        engines.convert_saved_model(str(tmp_path / "sm"), Precision.FLOAT32)
    assert "TF Select ops: WriteFile" in caught.value.log
    assert "\n" not in str(caught.value)
    out, err = capfd.readouterr()
    assert "WriteFile" not in out + err  # the log went into the error, not onto the terminal
