"""One contract, three transports: local, ssh (a real loopback sshd), adb (stand-in).

Every transport must pass arguments through untouched — spaces, quotes and `$(...)`
are text, never shell — push files by content, and report failures as DeviceErrors.
"""

from __future__ import annotations

import pytest

from edgeopt.bench.profiles import profile_from_dict
from edgeopt.bench.session import DeviceSession
from edgeopt.errors import RemoteCommandError

NASTY = ["a b", "$(touch PWNED)", "'q'", '"dq"', "`touch PWNED2`", "; touch PWNED3", "x\ny", "~/not-home", "*"]


def _run_once(profile, argv) -> str:
    transport = DeviceSession(profile).transport
    try:
        return transport.run(argv).stdout
    finally:
        transport.close()


class TransportContract:
    @pytest.fixture
    def profile(self):
        raise NotImplementedError

    @pytest.fixture
    def session(self, profile):
        with DeviceSession(profile) as session:
            yield session

    def test_arguments_arrive_verbatim_and_execute_nothing(self, session):
        completed = session.transport.run(["printf", "%s|", *NASTY])
        assert completed.stdout == "|".join(NASTY) + "|"
        listing = session.transport.run(["ls", "-a", session.workdir]).stdout.split()
        assert not [name for name in listing if name.startswith("PWNED")]

    def test_push_once_by_content(self, session, tmp_path):
        local = tmp_path / "it's a $(model).tflite"
        local.write_bytes(b"TFL3 content")
        remote = session.push(local)
        assert remote.startswith(session.workdir) and "$" not in remote and "'" not in remote
        assert session._remote_sha256(remote) is not None
        assert session.push(local) == remote
        assert session.transport.run(["cat", remote]).stdout == "TFL3 content"

    def test_nonzero_exit_is_a_remote_command_error(self, session):
        with pytest.raises(RemoteCommandError) as caught:
            session.transport.run(["sh", "-c", "echo boom >&2; exit 7"])
        assert caught.value.exit_code == 7 and "boom" in caught.value.stderr_tail
        assert caught.value.device == session.device

    def test_timeout(self, session):
        with pytest.raises(RemoteCommandError, match="timed out after 1 s"):
            session.transport.run(["sleep", "5"], timeout_s=1)

    def test_cleanup_removes_what_was_pushed(self, profile, tmp_path):
        local = tmp_path / "m.bin"
        local.write_bytes(b"x" * 100)
        with DeviceSession(profile) as session:
            remote = session.push(local)
            workdir = session.workdir
        assert _run_once(profile, ["sh", "-c", 'test -e "$1" && echo yes || echo no', "sh", remote]) == "no\n"
        assert _run_once(profile, ["sh", "-c", 'test -d "$1" && echo yes || echo no', "sh", workdir]) == "no\n"

    def test_keep_leaves_files(self, profile, tmp_path):
        local = tmp_path / "m.bin"
        local.write_bytes(b"y" * 10)
        with DeviceSession(profile, keep=True) as session:
            remote = session.push(local)
        assert _run_once(profile, ["cat", remote]) == "y" * 10


class TestLocal(TransportContract):
    @pytest.fixture
    def profile(self, tmp_path):
        return profile_from_dict({"workdir": str(tmp_path / "work")}, name="local-test")


@pytest.mark.ssh
class TestSsh(TransportContract):
    @pytest.fixture
    def profile(self, ssh_profile):
        return ssh_profile()


@pytest.mark.adb
class TestAdbStandin(TransportContract):
    @pytest.fixture
    def profile(self, adb_standin):
        return adb_standin()
