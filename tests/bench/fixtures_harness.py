"""Fixtures for the device harness: a real loopback sshd, a minimal "device" Python,
a stand-in adb, and tiny .tflite models made by the real converter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from edgeopt.bench.profiles import DeviceProfile, profile_from_dict
from tools.loopback_sshd import LoopbackSshd, find_sshd

STANDIN_DIR = Path(__file__).parent / "standin"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def tflite_models(digits, tmp_path_factory):
    """{'float32': path, 'int8': path} of a small digits MLP, plus a model LiteRT refuses."""
    import keras

    from edgeopt import export_tflite

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)], name="mlp")
    out = tmp_path_factory.mktemp("tflite")
    report = export_tflite(model, ["float32", "int8"], output_dir=out, calibration_data=digits.x_train[:32])
    paths = {e.precision: Path(e.path) for e in report.entries}
    paths["refused"] = _with_unknown_custom_op(paths["float32"], out / "refused.tflite")
    return paths


def _with_unknown_custom_op(source: Path, target: Path) -> Path:
    """A well-formed flatbuffer whose first op is a custom op no runtime knows."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(source.read_bytes()), 0)
    model.operatorCodes[0].builtinCode = schema.BuiltinOperator.CUSTOM
    model.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    model.operatorCodes[0].customCode = b"EdgeoptNoSuchOp"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(bytes(builder.Output()))
    return target


@pytest.fixture(scope="session")
def device_python():
    """A virtualenv with only numpy + ai-edge-litert: the "device" side of ssh tests.

    Installed with --no-deps to prove the runner needs nothing else; cached between
    runs under ~/.cache because it is the same every time.
    """
    versions = {name: metadata.version(name) for name in ("numpy", "ai-edge-litert")}
    tag = f"py{sys.version_info.major}{sys.version_info.minor}-np{versions['numpy']}-litert{versions['ai-edge-litert']}"
    venv = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgeopt-tests" / f"device-venv-{tag}"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import numpy, ai_edge_litert.interpreter"]
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                        *(f"{name}=={version}" for name, version in versions.items())], check=True)
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout
    installed = {line.split("==")[0].lower() for line in listed.split()}
    assert installed - {"pip", "setuptools", "wheel"} == {"numpy", "ai-edge-litert"}, installed
    return str(python)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    if find_sshd() is None:
        pytest.fail("sshd is missing: apt-get install openssh-server (.ci/run installs it)")
    with LoopbackSshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="session")
def sshd_without_sftp(tmp_path_factory):
    """A loopback sshd with no `Subsystem sftp`, as dropbear on Yocto/OpenWrt images."""
    if find_sshd() is None:
        pytest.fail("sshd is missing: apt-get install openssh-server (.ci/run installs it)")
    with LoopbackSshd(tmp_path_factory.mktemp("sshd-nosftp"), sftp=False) as server:
        yield server


def _profile_factory(server, device_python, tmp_path):
    def make(**overrides) -> DeviceProfile:
        fields = server.profile_fields(python=device_python, workdir=str(tmp_path / "remote"))
        fields.update(overrides)
        return profile_from_dict(fields, name="loopback-ssh")

    return make


@pytest.fixture
def ssh_profile(sshd, device_python, tmp_path):
    return _profile_factory(sshd, device_python, tmp_path)


@pytest.fixture
def ssh_profile_without_sftp(sshd_without_sftp, device_python, tmp_path):
    return _profile_factory(sshd_without_sftp, device_python, tmp_path)


# A workdir no shell may reinterpret: spaces, both quotes, $(...), backticks, a glob.
HOSTILE_DIR = "it's a \"dir\" $(touch PWNED) `touch PWNED2` [x]*"


STANDIN_BENCHMARK_MODEL = """#!/bin/sh
# STAND-IN for TFLite's benchmark_model (tests only): records its argv, prints a fixture.
printf '%s\\n' "$@" > "$(dirname "$0")/benchmark_model.argv"
cat <<'OUTPUT'
{output}
OUTPUT
"""


@pytest.fixture
def adb_standin(tmp_path, monkeypatch):
    """A profile for the stand-in adb with one attached "device" and a stand-in benchmark_model."""
    monkeypatch.setenv("STANDIN_ADB_SERIALS", "STANDIN-0001")
    binary = tmp_path / "benchmark_model"
    binary.write_text(STANDIN_BENCHMARK_MODEL.format(output=(FIXTURES / "newer_info.txt").read_text().strip()))

    def make(**overrides) -> DeviceProfile:
        fields = {"transport": "adb", "adb": str(STANDIN_DIR / "adb"), "serial": "STANDIN-0001",
                  "workdir": str(tmp_path / "data-local-tmp" / "edgeopt"), "runner": "benchmark_model",
                  "benchmark_model": str(binary), "threads": 4}
        fields.update(overrides)
        return profile_from_dict(fields, name="android-standin")

    return make


def running(marker: str) -> list[str]:
    """Command lines of this machine's processes that mention `marker` (the loopback
    "device" is this machine, so a runner left behind on it shows up here)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in text and int(cmdline.parent.name) != os.getpid():
            found.append(text)
    return found


def wait_until_gone(marker: str, timeout_s: float = 5.0) -> list[str]:
    """`running(marker)` once it is empty, or what is still running after `timeout_s`."""
    import time

    deadline = time.monotonic() + timeout_s
    while (left := running(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def kill_leftovers(marker: str) -> None:
    """Ends what a failing test left running, so it does not skew the next test."""
    import signal

    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass
