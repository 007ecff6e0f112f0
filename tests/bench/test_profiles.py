"""Device profiles: every shipped profile loads; bad ones fail with the key and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt import ConfigError
from edgeopt.bench.profiles import HostKeyChecking, TransportKind, list_profiles, load_profile

REPO_DEVICES = Path(__file__).resolve().parents[2] / "devices"


@pytest.mark.parametrize("path", sorted(REPO_DEVICES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_profile_loads(path):
    profile = load_profile(path)
    assert profile.name == path.stem
    assert profile.strict_host_key_checking is HostKeyChecking.YES  # never shipped off
    by_name = load_profile(path.stem)
    assert by_name.to_dict() == profile.to_dict()


def test_shipped_set_and_defaults():
    names = {p.name for p in list_profiles()}
    assert {"local", "rpi4", "rpi5", "android"} <= names
    android = load_profile("android")
    assert android.transport is TransportKind.ADB and android.remote_workdir == "/data/local/tmp/edgeopt"


@pytest.mark.parametrize(
    "text, message",
    [
        ("transport: ssh\nhost: pi\nhots: typo\n", "Unknown key.*Received: hots"),
        ("transport: bluetooth\n", "Bad value for 'transport'.*'bluetooth'.*local, ssh, adb"),
        ("transport: ssh\n", "needs 'host'"),
        ("threads: 0\n", "'threads' must be a positive integer.*threads=0"),
        ("cpu_mask: zz\n", "hex mask"),
        ("runner: benchmark_model\n", "needs 'benchmark_model'"),
        ("timeout_s: -1\n", "timeout_s"),
        ("transport: ssh\n- host\n", r"does not parse.*line 2"),
        ("- a\n- b\n", "must be a YAML mapping"),
    ],
)
def test_bad_profiles(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_profile(path)


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"No such device profile\. Received: 'pixel9'.*rpi4"):
        load_profile("pixel9")


def test_yaml_yes_no_for_host_key_checking(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("transport: ssh\nhost: pi\nstrict_host_key_checking: no\n")
    assert load_profile(path).strict_host_key_checking is HostKeyChecking.NO
