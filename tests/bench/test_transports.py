"""One contract, three transports: local, ssh (a real loopback sshd), adb (stand-in).

Every transport must pass arguments through untouched — spaces, quotes and `$(...)`
are text, never shell — push files by content, and report failures as DeviceErrors.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from edgeopt.bench.profiles import profile_from_dict
from edgeopt.bench.session import DeviceSession
from edgeopt.errors import RemoteCommandError
from tests.bench.fixtures_harness import HOSTILE_DIR, kill_leftovers, running, wait_until_gone

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

    def test_timeout_leaves_nothing_running_on_the_device(self, session):
        marker = f"edgeopt-test-{uuid.uuid4().hex}"
        seconds = f"{300 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"  # sleep's own marker
        try:
            with pytest.raises(RemoteCommandError, match="timed out after 1 s and was stopped on the device"):
                session.transport.run(["sh", "-c", 'sleep "$1" & sleep "$1"; :', marker, seconds], timeout_s=1)
            assert wait_until_gone(marker) == [] and wait_until_gone(f"sleep {seconds}") == []
        finally:
            kill_leftovers(marker)
            kill_leftovers(f"sleep {seconds}")

    def test_env_values_arrive_verbatim(self, profile):
        env = {"EDGEOPT_A": "a b $(touch PWNED) `id` 'q' \"d\" ; *", "EDGEOPT_B": "--split-string=x"}
        profile = dataclasses.replace(profile, env=env)
        completed = DeviceSession(profile).transport.run(["sh", "-c", 'printf "%s|" "$EDGEOPT_A" "$EDGEOPT_B"'])
        assert completed.stdout == "|".join(env.values()) + "|"

    def test_hostile_workdir(self, profile, tmp_path):
        workdir = tmp_path / HOSTILE_DIR
        local = tmp_path / "m.bin"
        local.write_bytes(b"z" * 1000)
        with DeviceSession(dataclasses.replace(profile, workdir=str(workdir))) as session:
            assert session.workdir == str(workdir)
            remote = session.push(local)
            assert session.transport.run(["cat", remote]).stdout == "z" * 1000
            assert sorted(p.name for p in workdir.iterdir()) == [remote.rsplit("/", 1)[1]]
        assert not list(tmp_path.rglob("PWNED*"))

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


@pytest.mark.ssh
class TestSshWithoutSftp(TransportContract):
    """dropbear-like: scp (sftp) fails with "Connection closed"; pushes stream through ssh."""

    @pytest.fixture
    def profile(self, ssh_profile_without_sftp):
        return ssh_profile_without_sftp()


@pytest.mark.ssh
def test_known_hosts_and_key_paths_with_spaces(ssh_profile, sshd, tmp_path):
    spaced = tmp_path / "my keys" / "100% 'odd' \"dir\""
    spaced.mkdir(parents=True)
    known_hosts = spaced / "known hosts"
    known_hosts.write_text(sshd.known_hosts.read_text())
    key = spaced / "client key"
    key.write_bytes(sshd.client_key.read_bytes())
    key.chmod(0o600)
    profile = ssh_profile(known_hosts_file=str(known_hosts), identity_file=str(key))
    assert _run_once(profile, ["echo", "hello"]) == "hello\n"


@pytest.mark.adb
class TestAdbStandin(TransportContract):
    @pytest.fixture
    def profile(self, adb_standin):
        return adb_standin()
