"""Faults mid-benchmark: a remote timeout, Ctrl-C, and the device's sshd dying. Each ends
with a clear error and no process of the bench left running on the "device" (the
loopback sshd's commands run on this machine, so a leftover runner shows up in /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from edgeopt.bench.harness import measure_latency
from edgeopt.bench.profiles import profile_from_dict
from edgeopt.errors import RemoteCommandError
from tests.bench.fixtures_harness import kill_leftovers, running, wait_until_gone
from tools.loopback_sshd import LoopbackSshd

REPO = Path(__file__).resolve().parents[2]
FOREVER = ["--runs", "1000000000", "--min-secs", "120", "--max-secs", "120", "--warmup", "0"]


@pytest.fixture
def marker():
    """A unique word for this test's workdirs: every process of the bench carries it."""
    word = f"edgeopt-fault-{uuid.uuid4().hex[:12]}"
    yield word
    kill_leftovers(word)


def _wait_for_runner(marker: str, python: str, proc: subprocess.Popen | None = None, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(cmdline.startswith(python) and "--model" in cmdline for cmdline in running(marker)):
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"bench ended before its runner started: {proc.communicate()}")
        time.sleep(0.1)
    pytest.fail(f"the runner did not start; running: {running(marker)}")


def _bench_cli(model, profiles, tmp_path):
    paths = []
    for profile in profiles:
        path = tmp_path / f"{profile.name}.yaml"
        path.write_text(yaml.safe_dump(profile.to_dict()))
        paths += ["-d", str(path)]
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, "-m", "edgeopt.cli", "bench", str(model), *paths, *FOREVER, "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc: subprocess.Popen, timeout_s: float) -> tuple[int, str]:
    try:
        _, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"edgeopt bench did not exit within {timeout_s} s: {stderr[-2000:]}")
    return proc.returncode, stderr


@pytest.mark.ssh
def test_remote_timeout_stops_the_runner_on_the_device(tflite_models, ssh_profile, device_python, tmp_path, marker):
    profile = ssh_profile(workdir=str(tmp_path / marker), timeout_s=4)
    started = time.monotonic()
    with pytest.raises(RemoteCommandError, match="timed out after 4 s and was stopped on the device"):
        measure_latency(tflite_models["int8"], profile, runs=10**9, warmup=0, min_secs=120, max_secs=120)
    assert time.monotonic() - started < 30
    assert wait_until_gone(marker) == []


@pytest.mark.ssh
@pytest.mark.slow
def test_ctrl_c_stops_the_runners_everywhere(tflite_models, ssh_profile, device_python, tmp_path, marker):
    remote = ssh_profile(workdir=str(tmp_path / f"{marker}-ssh"))
    local = profile_from_dict({"workdir": str(tmp_path / f"{marker}-local")}, name="local-marked")
    proc = _bench_cli(tflite_models["int8"], [local, remote], tmp_path)
    try:
        _wait_for_runner(marker, device_python, proc)
        _wait_for_runner(marker, sys.executable, proc)
        proc.send_signal(signal.SIGINT)  # to edgeopt alone, as `kill -INT`; a terminal's Ctrl-C is the same
        code, stderr = _finish(proc, 30)
    finally:
        proc.kill()
    assert code == 130
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Interrupted: the runs on every device were stopped"), stderr
    assert wait_until_gone(marker) == []


@pytest.mark.ssh
@pytest.mark.slow
def test_sshd_killed_mid_bench(tflite_models, device_python, tmp_path, marker):
    server = LoopbackSshd(tmp_path / "dying-sshd").start()
    try:
        profile = profile_from_dict(server.profile_fields(python=device_python, workdir=str(tmp_path / marker),
                                                          connect_timeout_s=3), name="dying")
        proc = _bench_cli(tflite_models["int8"], [profile], tmp_path)
        try:
            _wait_for_runner(marker, device_python, proc)
            server.kill_all()  # the board loses power: sshd, its sessions and the runner are gone
            code, stderr = _finish(proc, 60)
        finally:
            proc.kill()
    finally:
        server.stop()
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1, stderr
    assert lines[0] in ("Error: 1 of 1 jobs failed: dying: DeviceUnreachableError",
                        "Error: 1 of 1 jobs failed: dying: RemoteCommandError"), stderr
    assert wait_until_gone(marker) == []
