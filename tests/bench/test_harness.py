"""bench / measure_latency end to end: local, a real loopback sshd, adb (real client for
its errors, a stand-in for success), and every fault the harness must report."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time

import pytest

from edgeopt.bench.checks import check_device
from edgeopt.bench.harness import benchmark, measure_latency
from edgeopt.bench.profiles import profile_from_dict
from edgeopt.errors import ConfigError, DeviceError, DeviceUnreachableError, InvalidModelError, RemoteCommandError

FAST = dict(runs=10, warmup=1, min_secs=0.05)
CORE = ["p50_ms", "p90_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "init_ms", "first_inference_ms", "peak_rss_mb",
        "runtime", "runtime_version", "runs", "cpu_model", "latencies_ms"]


def test_local(tflite_models):
    result = measure_latency(tflite_models["int8"], "local", threads=1, **FAST)
    assert result.ok and result.runtime == "ai_edge_litert" and result.threads == 1
    assert all(getattr(result, key) is not None for key in CORE)
    assert result.runs >= 10 and len(result.latencies_ms) == min(result.runs, 20000)
    assert result.latencies_truncated == (result.runs > 20000)
    assert result.min_ms <= result.p50_ms <= result.p90_ms <= result.max_ms


@pytest.mark.ssh
def test_ssh_gives_the_same_schema_as_local(tflite_models, ssh_profile):
    local = measure_latency(tflite_models["float32"], "local", **FAST)
    remote = measure_latency(tflite_models["float32"], ssh_profile(), **FAST)
    assert remote.ok and remote.transport == "ssh" and local.transport == "local"
    assert {k for k, v in remote.to_dict().items() if v is not None} == \
        {k for k, v in local.to_dict().items() if v is not None}
    assert remote.model_sha256 == local.model_sha256


@pytest.mark.ssh
def test_model_path_with_shell_characters(tflite_models, ssh_profile, tmp_path):
    weird = tmp_path / "it's a $(touch PWNED) `id` model.tflite"
    shutil.copyfile(tflite_models["int8"], weird)
    profile = ssh_profile()
    result = measure_latency(weird, profile, **FAST)
    assert result.ok and result.model == str(weird)
    assert not list(tmp_path.rglob("PWNED*")) and not os.path.exists(os.path.expanduser("~/PWNED"))


@pytest.mark.ssh
def test_ssh_faults(tflite_models, ssh_profile, tmp_path, sshd):
    model = tflite_models["int8"]
    (tmp_path / "empty_known_hosts").write_text("")
    with pytest.raises(DeviceError, match="host key is unknown.*ssh-keyscan -p"):
        measure_latency(model, ssh_profile(known_hosts_file=str(tmp_path / "empty_known_hosts")), **FAST)

    from tools.loopback_sshd import keygen

    keygen(tmp_path / "stranger")
    with pytest.raises(DeviceError, match="authentication failed.*ssh-agent"):
        measure_latency(model, ssh_profile(identity_file=str(tmp_path / "stranger")), **FAST)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(DeviceUnreachableError, match="Cannot reach the device"):
        measure_latency(model, ssh_profile(port=dead_port, connect_timeout_s=3), **FAST)
    assert time.monotonic() - started < 3 + 5

    with pytest.raises(DeviceError, match="workdir is not writable"):
        measure_latency(model, ssh_profile(workdir="/proc/edgeopt-cannot-exist"), **FAST)


@pytest.mark.ssh
def test_runtime_missing_malformed_output_refused_model(tflite_models, ssh_profile, tmp_path):
    import venv

    venv.create(tmp_path / "bare", with_pip=False)  # a Python with no LiteRT runtime
    with pytest.raises(DeviceError, match="No LiteRT runtime.*pip install numpy ai-edge-litert"):
        measure_latency(tflite_models["int8"], ssh_profile(python=str(tmp_path / "bare" / "bin" / "python")), **FAST)
    with pytest.raises(RemoteCommandError, match="no valid JSON"):
        measure_latency(tflite_models["int8"], ssh_profile(python="/bin/echo"), **FAST)
    with pytest.raises(DeviceError, match="no Python at the profile's path"):
        measure_latency(tflite_models["int8"], ssh_profile(python="/nonexistent/python3"), **FAST)
    with pytest.raises(RemoteCommandError, match="refused the model"):
        measure_latency(tflite_models["refused"], ssh_profile(), **FAST)
    with pytest.raises(RemoteCommandError, match="timed out"):
        measure_latency(tflite_models["int8"], ssh_profile(timeout_s=2), runs=10**9, min_secs=6, max_secs=6)


@pytest.mark.ssh
def test_a_failing_device_does_not_stop_the_others(tflite_models, ssh_profile, tmp_path):
    good = ssh_profile()
    bad = profile_from_dict(dict(ssh_profile().to_dict(), name="broken", port=1), name="broken")
    lines = []
    results = benchmark([tflite_models["int8"], tflite_models["float32"]], ["local", good, bad], progress=lines.append,
                        **FAST)
    by_device = {}
    for r in results:
        by_device.setdefault(r.device, []).append(r)
    assert [r.ok for r in by_device["local"]] == [True, True]
    assert [r.ok for r in by_device["loopback-ssh"]] == [True, True]
    assert [r.error_type for r in by_device["broken"]] == ["DeviceUnreachableError"] * 2
    assert any("ERROR" in line and "broken" in line for line in lines)


@pytest.mark.ssh
def test_devices_check_over_ssh(ssh_profile):
    checks = {c.name: c for c in check_device(ssh_profile())}
    assert all(c.ok for c in checks.values()), checks
    assert checks["runtime"].detail.startswith("ai_edge_litert 2.")


@pytest.mark.adb
def test_adb_standin_benchmark_model(tflite_models, adb_standin, tmp_path):
    profile = adb_standin(cpu_mask="1", benchmark_model_flags=["--use_gpu=false"])
    result = measure_latency(tflite_models["int8"], profile, **FAST)
    assert result.ok and result.runner == "benchmark_model" and result.transport == "adb"
    assert result.mean_ms == pytest.approx(2950.34) and result.runs == 50 and result.init_ms == pytest.approx(17.187)
    assert result.latencies_ms is None and result.p90_ms is None  # benchmark_model does not print them
    argv = (tmp_path / "data-local-tmp" / "edgeopt" / "benchmark_model.argv").read_text().split("\n")
    assert any(a.startswith("--graph=") and a.endswith(".tflite") for a in argv)
    assert {"--num_runs=10", "--warmup_runs=1", "--use_xnnpack=true", "--num_threads=4", "--use_gpu=false"} <= set(argv)


@pytest.mark.adb
def test_adb_standin_several_devices_need_a_serial(tflite_models, adb_standin, monkeypatch):
    monkeypatch.setenv("STANDIN_ADB_SERIALS", "STANDIN-0001,STANDIN-0002")
    with pytest.raises(DeviceError, match="Several Android devices.*serial"):
        measure_latency(tflite_models["int8"], adb_standin(serial=None), **FAST)


@pytest.fixture
def real_adb(monkeypatch):
    adb = shutil.which("adb")
    if adb is None:
        pytest.fail("adb is missing: apt-get install adb (.ci/run installs it)")
    with socket.socket() as sock:  # a private adb server, so no real phone on this host can answer
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(sock.getsockname()[1]))
    yield adb
    import subprocess

    subprocess.run([adb, "kill-server"], capture_output=True, timeout=30)


@pytest.mark.adb
def test_real_adb_without_a_device(tflite_models, real_adb):
    profile = profile_from_dict({"transport": "adb", "runner": "python"}, name="android")
    checks = check_device(profile)
    assert [c.name for c in checks] == ["reachable"] and not checks[0].ok
    assert "No Android device is attached" in checks[0].detail and "USB debugging" in checks[0].hint
    results = benchmark([tflite_models["int8"]], ["local", profile], **FAST)
    assert results[0].ok and results[1].error_type == "DeviceUnreachableError"
    with pytest.raises(DeviceUnreachableError, match="not attached.*serial='NOPE123'"):
        measure_latency(tflite_models["int8"], profile_from_dict({"transport": "adb", "serial": "NOPE123"}, name="a"),
                        **FAST)


def test_bad_models_and_profiles_fail_before_any_work(tmp_path, tflite_models):
    (tmp_path / "bad.tflite").write_bytes(b"garbage" * 10)
    with pytest.raises(InvalidModelError, match="no 'TFL3' identifier"):
        benchmark([tmp_path / "bad.tflite"], ["local"])
    with pytest.raises(ConfigError, match="No such device profile"):
        benchmark([tflite_models["int8"]], ["nope-device"])
    with pytest.raises(ConfigError, match="listed twice"):
        benchmark([tflite_models["int8"]], ["local", "local"])


def test_results_serialise(tflite_models):
    result = measure_latency(tflite_models["float32"], **FAST)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["device"] == "local" and data["delegation"] is None


# --- Odd runner / benchmark_model output: one error row for that job, the others kept. ---

FAKE_RUNNER = "#!/bin/sh\n# STAND-IN for a broken device Python: prints a canned output.\n{body}\n"
ODD_OUTPUTS = {  # kind: (what the fake device Python prints, what the error row says)
    "numbers-as-strings": ('echo \'{"p50_ms": "1.2", "mean_ms": "1.3", "runs": "10"}\'', "is not a"),
    "empty-object": ("echo '{}'", "it holds no latency"),
    "nested-100k-deep": ("python3 -c \"print('{\\\"a\\\": ' + '[' * 100000 + ']' * 100000 + '}')\"", "no valid JSON"),
    "nan-latencies": ('echo \'{"p50_ms": NaN, "mean_ms": NaN, "latencies_ms": [NaN, NaN]}\'', "mean_ms is nan"),
    "infinite-p50": ('echo \'{"p50_ms": Infinity, "mean_ms": 1.0}\'', "p50_ms is inf"),
    "50MB-of-output": ("head -c 52428800 /dev/zero | tr '\\0' x; echo; echo '{\"p50_ms\": 1.0, \"mean_ms\": 1.0}'",
                       "printed more than 8 MiB"),
}


def odd_device(tmp_path, name, body, **fields):
    script = tmp_path / f"{name}.sh"
    script.write_text(FAKE_RUNNER.format(body=body))
    script.chmod(0o755)
    return profile_from_dict(dict({"python": str(script), "workdir": str(tmp_path / name)}, **fields), name=name)


@pytest.mark.parametrize("kind", ODD_OUTPUTS)
def test_odd_runner_output_is_one_error_row_and_other_devices_are_kept(kind, tflite_models, tmp_path):
    body, message = ODD_OUTPUTS[kind]
    odd = odd_device(tmp_path, "odd", body)
    results = benchmark([tflite_models["int8"]], ["local", odd], **FAST)
    assert [(r.device, r.status) for r in results] == [("local", "ok"), ("odd", "error")]
    assert results[0].p50_ms > 0
    assert results[1].error_type == "RemoteCommandError"
    assert results[1].error.startswith("[odd] ") and message in results[1].error, results[1].error


def test_runner_output_cannot_set_the_harness_fields(tflite_models, tmp_path):
    spoof = odd_device(tmp_path, "spoof", 'echo \'{"device": "x", "status": "error", "model": "y", "mean_ms": 2.0}\'')
    (result,) = benchmark([tflite_models["int8"]], [spoof], **FAST)
    assert (result.device, result.model, result.status, result.mean_ms) == ("spoof", str(tflite_models["int8"]),
                                                                         "ok", 2.0)


@pytest.mark.adb
def test_odd_benchmark_model_output_is_an_error_row(tflite_models, adb_standin, tmp_path):
    binary = tmp_path / "odd_benchmark_model"
    binary.write_text("#!/bin/sh\necho 'INFO: count=50 first=1 curr=1 min=nan max=nan avg=nan std=nan'\n"
                      "echo 'INFO: Inference timings in us: Init: 1, First inference: 1, Warmup (avg): 1, "
                      "Inference (avg): 1e999'\n")
    binary.chmod(0o755)
    results = benchmark([tflite_models["int8"]], ["local", adb_standin(benchmark_model=str(binary))], **FAST)
    assert [r.status for r in results] == ["ok", "error"]
    assert results[1].error_type == "RemoteCommandError" and "printed no timings" in results[1].error


@pytest.mark.ssh
def test_hostile_workdir_without_sftp(tflite_models, ssh_profile_without_sftp, tmp_path):
    from tests.bench.fixtures_harness import HOSTILE_DIR

    workdir = tmp_path / HOSTILE_DIR
    result = measure_latency(tflite_models["int8"], ssh_profile_without_sftp(workdir=str(workdir)), **FAST)
    assert result.ok and result.transport == "ssh" and result.p50_ms > 0
    assert not list(tmp_path.rglob("PWNED*")) and not workdir.exists()  # cleaned up, nothing ran
