"""DeviceSession: a private workdir on every transport, and the runner's output parsed
defensively (whatever a device prints becomes a result or an error, never a crash)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeopt.bench.profiles import profile_from_dict
from edgeopt.bench.session import DeviceSession
from edgeopt.errors import DeviceError


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.ssh
def test_default_ssh_workdir_is_per_user_and_private(ssh_profile, tmp_path):
    profile = ssh_profile(workdir=None)
    assert profile.remote_workdir == ""  # decided on the device, never a shared /tmp/edgeopt
    cache = tmp_path / "xdg cache"
    with DeviceSession(ssh_profile(workdir=None, env={"XDG_CACHE_HOME": str(cache)})) as session:
        assert session.workdir == str(cache / "edgeopt")
        assert _mode(session.workdir) == 0o700
    with DeviceSession(profile) as session:
        home = session.transport.run(["sh", "-c", 'printf %s "$HOME"']).stdout
        assert session.workdir == f"{home}/.cache/edgeopt" and _mode(session.workdir) == 0o700


@pytest.mark.parametrize("transport", ["local", pytest.param("ssh", marks=pytest.mark.ssh)])
def test_a_workdir_other_users_can_write_is_refused(transport, request, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    fields = {"workdir": str(shared)}
    profile = (request.getfixturevalue("ssh_profile")(**fields) if transport == "ssh"
               else profile_from_dict(fields, name="local-test"))
    with pytest.raises(DeviceError, match=r"not private to the device user.*writable by other users.*only you"):
        DeviceSession(profile).__enter__()
    nested = profile_from_dict({"workdir": str(shared / "new")}, name="local-test")
    with DeviceSession(nested) as session:  # a new directory inside is created private
        assert _mode(session.workdir) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_workdir_owned_by_another_user_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 12345, 12345)
    with pytest.raises(DeviceError, match=r"not private.*belongs to uid 12345"):
        DeviceSession(profile_from_dict({"workdir": str(theirs)}, name="local-test")).__enter__()


@pytest.mark.parametrize("stdout, expected", [
    ('noise\n{"p50_ms": 1.5}\n', {"p50_ms": 1.5}),
    ('{"a": 1}\n{"b": 2}\n', {"b": 2}),
    ("[1, 2]\n", None),
    ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n", None),
    ('{"runs": ' + "9" * 5000 + "}\n", None),
    ("{not json\n", None),
    ("", None),
], ids=["last-object", "last-of-two", "list", "nested-100k", "int-5000-digits", "malformed", "empty"])
def test_parse_runner_json(stdout, expected):
    from edgeopt.bench.session import parse_runner_json

    assert parse_runner_json(stdout) == expected


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), _json.map(lambda v: json.dumps(v, allow_nan=True)),
                 st.tuples(st.text(max_size=50), _json).map(lambda t: t[0] + "\n" + json.dumps(t[1]))))
def test_parse_runner_json_never_raises(stdout):
    from edgeopt.bench.session import parse_runner_json

    data = parse_runner_json(stdout)
    assert data is None or isinstance(data, dict)
