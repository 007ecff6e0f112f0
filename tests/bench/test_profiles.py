"""Device profiles: every shipped profile loads; bad ones fail with the key and value."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

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


# --- Fields that reach an argv: validated, so no profile value is ever read as an option. ---

import string  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgeopt.bench.profiles import DeviceProfile, profile_from_dict  # noqa: E402
from edgeopt.bench.transports import make_transport  # noqa: E402


def with_env(argv, env):  # imported late, so that each test here fails on its own on older code
    from edgeopt.bench.transports import with_env

    return with_env(argv, env)

SSH = {"transport": "ssh", "host": "pi"}


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"env": {"--split-string=touch /tmp/EDGEOPT_PWNED": "x"}}, r"Bad environment variable name.*split-string"),
        ({"env": {"-S": "touch /tmp/EDGEOPT_PWNED"}}, "Bad environment variable name"),
        ({"env": {"A B": "1"}}, "Bad environment variable name"),
        ({"env": {"1ABC": "1"}}, "Bad environment variable name"),
        ({"env": {"A=B": "1"}}, "Bad environment variable name"),
        ({"env": {"": "1"}}, "Bad environment variable name"),
        ({"env": {"OK": None}}, "'env' values must be strings.*OK: \"1\""),
        ({"env": {"OK": ["a"]}}, "'env' values must be strings"),
        ({"env": {"OK": True}}, "'env' values must be strings"),
        ({"env": {"OK": "a\x00b"}}, "NUL"),
        ({"env": ["A=1"]}, "'env' must be a mapping"),
        (dict(SSH, host="-oProxyCommand=touch /tmp/EDGEOPT_PWNED"), "'host' cannot start with '-'"),
        (dict(SSH, host="pi -p 1"), "'host' cannot contain spaces"),
        (dict(SSH, host="pi\nProxyCommand x"), "'host' cannot contain control characters"),
        (dict(SSH, host=""), "'host' must be a non-empty string"),
        (dict(SSH, host=["pi"]), "'host' must be a non-empty string"),
        (dict(SSH, identity_file="-i/etc/x"), "'identity_file' cannot start with '-'"),
        (dict(SSH, known_hosts_file="a\nb"), "'known_hosts_file' cannot contain control characters"),
        ({"transport": "adb", "serial": "-a"}, "'serial' cannot start with '-'"),
        ({"transport": "adb", "serial": "A B"}, "'serial' cannot contain spaces"),
        ({"transport": "adb", "adb": "--help"}, "'adb' cannot start with '-'"),
        ({"workdir": "-rf"}, "'workdir' cannot start with '-'"),
        ({"workdir": "relative/dir"}, "'workdir' must be an absolute path"),
        ({"workdir": "/tmp/a\nb"}, "'workdir' cannot contain control characters"),
        ({"python": "-c"}, "'python' cannot start with '-'"),
        ({"python": ""}, "'python' must be a non-empty string"),
        ({"runner": "benchmark_model", "benchmark_model": "--graph=x"}, "'benchmark_model' cannot start with '-'"),
        ({"benchmark_model_flags": ["ok", "--x"]}, "'benchmark_model_flags' must be a list of flags"),
        ({"benchmark_model_flags": "--use_gpu=true"}, "'benchmark_model_flags' must be a list of flags"),
        ({"benchmark_model_flags": [1]}, "'benchmark_model_flags' must be a list of flags"),
        ({"cpu_mask": "-f0"}, "hex mask"),
        ({"cpu_mask": "f_0"}, "hex mask"),
        ({"cpu_mask": " f0"}, "hex mask"),
        ({"cpu_mask": 16}, "hex mask.*quoted"),
        ({"port": 70000}, "'port' must be a positive integer up to 65535"),
        ({"timeout_s": float("nan")}, "'timeout_s' must be a positive number"),
        ({"connect_timeout_s": float("inf")}, "'connect_timeout_s' must be a positive number"),
        ({"name": 7}, "'name' must be a string"),
        ({"description": None}, "'description' must be a string"),
        ({"transport": ["ssh"]}, "Bad value for 'transport'"),
        ({1: "x"}, "Unknown key.*Received: 1"),
        ({1: "x", "hots": 2}, "Unknown keys"),
    ],
)
def test_fields_that_reach_an_argv_are_checked(fields, message):
    with pytest.raises(ConfigError, match=message):
        profile_from_dict(fields, name="p")


def test_env_injection_runs_nothing(tmp_path):
    marker = tmp_path / "PWNED"
    with pytest.raises(ConfigError, match="Bad environment variable name"):
        profile_from_dict({"env": {f"--split-string=touch {marker}": "x"}}, name="p")
    assert not marker.exists()


def test_env_values_arrive_verbatim_and_argv0_with_equals_still_runs(tmp_path):
    values = {"EDGEOPT_A": "a b $(touch PWNED) `id` 'q' \"d\" ; x", "EDGEOPT_B": "-S oops", "EDGEOPT_C": "x=y\nz"}
    profile = profile_from_dict({"env": values}, name="p")
    transport = make_transport(profile)
    shown = transport.run(["python3", "-c", "import os, json; print(json.dumps({k: os.environ[k] for k in "
                           f"{sorted(values)!r}}}))"]).stdout
    assert json.loads(shown) == values
    odd_dir = tmp_path / "a=b"
    odd_dir.mkdir()
    tool = odd_dir / "tool"
    tool.write_text('#!/bin/sh\nprintf "%s|" "$EDGEOPT_B" "$@"\n')
    tool.chmod(0o755)
    assert transport.run([str(tool), "--x=1"]).stdout == "-S oops|--x=1|"
    assert not list(tmp_path.glob("PWNED*")) and not os.path.exists("PWNED")


def test_with_env_is_the_one_env_prefix():
    assert with_env(["python3", "x.py"], {}) == ["python3", "x.py"]
    assert with_env(["python3"], {"A": "1"}) == ["env", "--", "A=1", "python3"]
    assert with_env(["/o/a=b/py"], {"A": "1"}) == ["env", "--", "A=1", "sh", "-c", 'exec "$@"', "sh", "/o/a=b/py"]
    with pytest.raises(ConfigError, match="Bad environment variable name"):
        with_env(["true"], {"-S": "x"})  # a profile mutated after it was checked


# --- Property: any YAML-ish mapping is a DeviceProfile or a ConfigError, never anything else. ---

_FIELD_NAMES = sorted(f for f in DeviceProfile.__dataclass_fields__ if f != "source")
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70), st.floats(),
    st.text(max_size=30), st.sampled_from(["ssh", "adb", "local", "python", "benchmark_model", "yes", "no",
                                           "accept-new", "pi", "-x", "/tmp/w", "~/w", "f0", "--use_gpu=true"]),
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.one_of(st.text(max_size=12), st.integers()), inner, max_size=4),
                       max_leaves=12)
_keys = st.one_of(st.sampled_from(_FIELD_NAMES), st.text(max_size=10), st.integers())
_profiles = st.dictionaries(_keys, _values, max_size=8)
_good_words = st.text(alphabet=string.ascii_letters + string.digits + "._/~@", min_size=1, max_size=20)
_plausible = st.fixed_dictionaries({}, optional={
    "transport": st.sampled_from(["ssh", "adb", "local"]),
    "host": st.one_of(_good_words, st.text(max_size=12)), "port": st.integers(-5, 70000),
    "serial": st.one_of(_good_words, st.text(max_size=12)), "workdir": st.one_of(_good_words, st.text(max_size=12)),
    "python": st.one_of(_good_words, st.text(max_size=12)), "cpu_mask": st.one_of(st.text(max_size=8), _good_words),
    "known_hosts_file": st.text(max_size=20), "identity_file": st.text(max_size=20),
    "env": st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=12), st.integers()), max_size=3),
    "benchmark_model_flags": st.lists(st.text(max_size=12), max_size=3),
    "timeout_s": st.one_of(st.floats(), st.integers()), "threads": st.one_of(st.integers(-2, 64), st.floats()),
})


def _load(data):
    try:
        return profile_from_dict(data, name="p")
    except ConfigError:
        return None


def _check_argv(profile):
    """Every argv a transport would run for an accepted profile: text, no option smuggled in."""
    transport = make_transport(profile)
    transport._control = lambda: []  # the argv only: no master connection to a real host
    local_argv = transport._argv(with_env(["true"], profile.env))
    assert all(isinstance(a, str) and "\x00" not in a for a in local_argv)
    if profile.env and profile.transport == "local":
        assert local_argv[:2] == ["env", "--"]
    elif profile.env:
        assert " sh env -- " in local_argv[-1]  # remote_script: `exec sh -c '...' sh env -- NAME=... true`
    if profile.transport == "ssh":
        host_at = local_argv.index("--") + 1
        assert local_argv[host_at] == profile.host and not profile.host.startswith("-")
    if profile.transport == "adb" and profile.serial:
        assert local_argv[1:3] == ["-s", profile.serial] and not profile.serial.startswith("-")
    for key in ("host", "serial", "python", "workdir", "benchmark_model", "adb"):
        value = getattr(profile, key)
        assert value is None or (not value.startswith("-") and value.isprintable())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_profiles)
def test_any_mapping_is_a_profile_or_a_config_error(data):
    profile = _load(data)
    if profile is not None:
        assert isinstance(profile, DeviceProfile)
        assert profile_from_dict(profile.to_dict(), name="p") == profile  # round-trips


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_plausible)
def test_accepted_profiles_build_safe_argvs(data):
    if data.get("transport") == "ssh":
        data.setdefault("host", "pi")
    profile = _load(data)
    if profile is not None:
        _check_argv(profile)


_yaml_texts = st.one_of(
    _profiles.map(lambda d: yaml.safe_dump({str(k): v for k, v in d.items()}, allow_unicode=True)),
    st.text(max_size=200),
    st.sampled_from(["port: " + "9" * 5000, "env: &a [*a]", "[" * 5000, "a: 2001-13-45", "transport: !!binary x",
                     "host: !!python/object:os.system x", "\x00\x01", "env:\n  ? [a]\n  : 1\n"]),
)


@settings(max_examples=200, deadline=None)
@given(_yaml_texts)
def test_any_profile_file_loads_or_is_a_config_error(text):
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "p.yaml"
        path.write_text(text, errors="surrogateescape")
        try:
            assert isinstance(load_profile(path), DeviceProfile)
        except ConfigError:
            pass
