"""`edgeopt bench` and `edgeopt devices` through CliRunner."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from click.testing import CliRunner

from edgeopt.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_bench_local_table_json_csv_out(tflite_models, tmp_path):
    out, table = tmp_path / "results.json", tmp_path / "results.csv"
    result = run("bench", tflite_models["int8"], tflite_models["float32"], "--runs", 10, "--min-secs", 0.05,
                 "--threads", 1, "--out", out, "--csv", table)
    assert result.exit_code == 0, result.output
    assert "p50 ms" in result.stdout and "ai_edge_litert" in result.stdout
    assert "1/2 mlp.int8.tflite: measuring" in result.stderr
    saved = json.loads(out.read_text())
    assert [r["status"] for r in saved] == ["ok", "ok"] and len(saved[0]["latencies_ms"]) >= 10
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 2 and float(rows[0]["p50_ms"]) > 0 and rows[0]["threads"] == "1"

    result = run("bench", tflite_models["int8"], "--runs", 5, "--min-secs", 0, "--json", "-q")
    assert json.loads(result.stdout)[0]["runtime"] == "ai_edge_litert"


@pytest.mark.ssh
def test_bench_failure_keeps_other_results_and_exits_1(tflite_models, ssh_profile, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(ssh_profile().to_dict()))
    dead = tmp_path / "dead.yaml"
    dead.write_text(yaml.safe_dump(dict(ssh_profile().to_dict(), port=1, name="dead")))
    out = tmp_path / "results.json"
    result = run("bench", tflite_models["int8"], "-d", "local", "-d", good, "-d", dead, "--runs", 5,
                 "--min-secs", 0, "--out", out, "-q")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == "Error: 1 of 3 jobs failed: dead: DeviceUnreachableError"
    saved = {r["device"]: r for r in json.loads(out.read_text())}
    assert saved["local"]["status"] == saved["loopback-ssh"]["status"] == "ok"
    assert saved["dead"]["status"] == "error" and "[dead] Cannot reach the device" in saved["dead"]["error"]


def test_bench_bad_input(tmp_path, tflite_models):
    (tmp_path / "empty.tflite").write_bytes(b"")
    result = run("bench", tmp_path / "empty.tflite")
    assert result.exit_code == 1 and result.stderr.startswith("Error: The TFLite file is empty")
    result = run("bench", tflite_models["int8"], "-d", "no-such-board")
    assert result.exit_code == 1 and "No such device profile. Received: 'no-such-board'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_devices_list_and_check_local():
    result = run("devices", "list")
    assert result.exit_code == 0
    for name in ("local", "rpi4", "rpi5", "android"):
        assert name in result.stdout
    result = run("devices", "check", "local", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    # Structure and what this machine is known to have; the governor and temperature are
    # the host's state (a laptop on "powersave" or a hot CI runner fails them), so for
    # those only the agreement between finding, verdict, hint and exit code is asserted.
    assert list(checks) == ["reachable", "workdir writable", "runtime", "cpu", "governor", "temperature"]
    for check in checks.values():
        assert set(check) == {"name", "ok", "detail", "hint"} and isinstance(check["ok"], bool) and check["detail"]
    assert checks["reachable"]["ok"] and checks["reachable"]["detail"] == "local to this machine"
    assert checks["workdir writable"]["ok"]
    assert checks["runtime"]["ok"] and checks["runtime"]["detail"].startswith("ai_edge_litert ")
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    assert checks["governor"]["detail"].split()[0] == (governor or "not")
    assert checks["governor"]["ok"] is (governor in (None, "performance"))
    temperature = checks["temperature"]["detail"]
    assert checks["temperature"]["ok"] is (temperature == "not exposed" or float(temperature.split()[0]) < 70)
    for check in checks.values():
        assert (check["hint"] is None) is check["ok"] or check["name"] in ("cpu", "workdir writable", "reachable")
    failed = [name for name, c in checks.items() if not c["ok"]]
    assert result.exit_code == (1 if failed else 0)
    if failed:
        assert result.stderr.strip() == f"Error: local: {len(failed)} check(s) failed: {', '.join(failed)}"


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


@pytest.mark.ssh
def test_devices_check_unknown_host_key_gives_a_fix(ssh_profile, tmp_path):
    (tmp_path / "kh").write_text("")
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump(dict(ssh_profile().to_dict(), known_hosts_file=str(tmp_path / "kh"))))
    result = run("devices", "check", profile)
    assert result.exit_code == 1
    assert "FAIL reachable" in result.stdout and "fix: Verify the key" in result.stdout


@pytest.mark.parametrize("flag", ["--out", "--csv"])
def test_unwritable_output_paths_fail_before_measuring(flag, tflite_models, tmp_path):
    for path, message in [(tmp_path, f"{flag} names a directory"),
                          (f"{tmp_path}/new/", f"{flag} names a directory"),
                          (tmp_path / "missing" / "results.json", f"The directory for {flag} does not exist")]:
        result = run("bench", tflite_models["int8"], flag, path, "--runs", 5, "--min-secs", 0)
        assert result.exit_code == 1, result.output
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line, no traceback
        assert result.stderr.startswith(f"Error: {message}") and "Received:" in result.stderr
        assert "measuring" not in result.stderr and "p50" not in result.stdout  # nothing was measured
    assert not (tmp_path / "missing").exists() and not (tmp_path / "new").exists()


def test_odd_device_output_keeps_the_other_results(tflite_models, tmp_path):
    script = tmp_path / "odd-python"
    script.write_text("#!/bin/sh\necho '{\"p50_ms\": NaN, \"mean_ms\": NaN}'\n")
    script.chmod(0o755)
    odd = tmp_path / "odd.yaml"
    odd.write_text(yaml.safe_dump({"transport": "local", "python": str(script)}))
    out = tmp_path / "results.json"
    result = run("bench", tflite_models["int8"], "-d", "local", "-d", odd, "--runs", 5, "--min-secs", 0,
                 "--out", out, "-q")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["Error: 1 of 2 jobs failed: odd: RemoteCommandError"]
    saved = {r["device"]: r for r in json.loads(out.read_text())}
    assert saved["local"]["status"] == "ok" and saved["local"]["p50_ms"] > 0
    assert saved["odd"]["status"] == "error" and "_ms is nan, not a finite" in saved["odd"]["error"]
