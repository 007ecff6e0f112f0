"""A Linux board over the system OpenSSH clients (`ssh`, `scp`).

Using the system clients means the user's `~/.ssh/config` (aliases, ProxyJump, keys)
and agent work unchanged. `BatchMode=yes` (never prompt), `ConnectTimeout`, and
host-key checking on unless the profile opts out. One master connection per session
(OpenSSH's ControlMaster) carries every command and copy, so a benchmark pays for one
handshake instead of eight.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from edgeopt.bench.transports.base import Completed, Transport, remote_script
from edgeopt.errors import DeviceError, DeviceUnreachableError

_UNREACHABLE = ("Connection refused", "Connection timed out", "timed out", "No route to host",
                "Could not resolve hostname", "Network is unreachable", "Connection reset",
                "Connection closed by", "kex_exchange_identification", "Broken pipe",
                "mux_client", "Control socket connect", "closed by remote host")
# Streams a file into place when the device's sshd has no sftp subsystem (dropbear on
# Yocto/OpenWrt, minimal boards), where OpenSSH >= 9's sftp-based scp fails with
# "Connection closed" and legacy `scp -O` breaks on paths with spaces.
_STREAM_IN = 'cat > "$1.part" && mv -f "$1.part" "$1"'


def _option_path(path: str) -> str:
    """A path as one ssh_config word: quoted (spaces), `%` doubled (ssh's tokens)."""
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


class SshTransport(Transport):
    def __init__(self, profile, **kwargs):
        super().__init__(profile, **kwargs)
        self._control_dir: str | None = None
        self._sftp: bool | None = None  # does the device's sshd serve sftp (scp)? learnt on the first push

    def _port(self, flag: str = "-p") -> list[str]:
        return [flag, str(self.profile.port)] if self.profile.port else []

    def _control(self) -> list[str]:
        """Options that route through the session's master connection, opening it first."""
        if self._control_dir is None:
            self._control_dir = tempfile.mkdtemp(prefix="edgeopt-ssh-")
            path = str(Path(self._control_dir) / "master")
            # -f backgrounds the master after authentication; its stderr goes to a file, not
            # a pipe, so the lingering master cannot hold our subprocess pipes open.
            with tempfile.TemporaryFile(mode="w+") as log:
                argv = ["ssh", *self._options(), *self._port(), "-o", "ControlMaster=yes", "-o",
                        f"ControlPath={_option_path(path)}", "-o", "ControlPersist=120", "-N", "-f", "--",
                        self.profile.host]
                try:
                    code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                          timeout=self.profile.connect_timeout_s + 20).returncode
                except subprocess.TimeoutExpired:
                    code = 255
                    log.write("Connection timed out while opening the master connection")
                except FileNotFoundError as exc:
                    raise self._program_missing("ssh") from exc
                log.seek(0)
                stderr = log.read()
            if code != 0:
                shutil.rmtree(self._control_dir, ignore_errors=True)
                self._control_dir = None
                self._classify(Completed(argv=["ssh"], returncode=255, stdout="", stderr=stderr))
                raise DeviceError(f"ssh failed. Received: {stderr.strip()[-200:]!r}.",
                                  hint=f"Try `ssh {self.profile.host}` by hand.", device=self.device)
        return ["-o", "ControlMaster=no", "-o", f"ControlPath={_option_path(str(Path(self._control_dir) / 'master'))}"]

    def close(self) -> None:
        if self._control_dir is None:
            return
        try:
            subprocess.run(["ssh", "-o", f"ControlPath={_option_path(str(Path(self._control_dir) / 'master'))}",
                            "-O", "exit", "--", self.profile.host], capture_output=True, stdin=subprocess.DEVNULL,
                           timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self._control_dir, ignore_errors=True)
        self._control_dir = None

    def _master_alive(self) -> bool:
        try:
            return subprocess.run(["ssh", *self._control(), "-O", "check", "--", self.profile.host],
                                  capture_output=True, stdin=subprocess.DEVNULL, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _options(self) -> list[str]:
        p = self.profile
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, int(p.connect_timeout_s))}",
                   "-o", f"StrictHostKeyChecking={p.strict_host_key_checking}"]
        if p.known_hosts_file:
            path = os.path.abspath(os.path.expanduser(p.known_hosts_file))
            options += ["-o", f"UserKnownHostsFile={_option_path(path)}"]
        if p.identity_file:
            path = os.path.abspath(os.path.expanduser(p.identity_file))
            options += ["-o", f"IdentityFile={_option_path(path)}", "-o", "IdentitiesOnly=yes"]
        return options

    def _argv(self, argv: list[str]) -> list[str]:
        return ["ssh", *self._options(), *self._control(), *self._port(), "--", self.profile.host,
                remote_script(argv)]

    def push(self, local: str, remote: str) -> None:
        """scp (sftp) when the device serves it, else the bytes streamed through ssh."""
        local = os.path.abspath(local)  # a relative `a:b.tflite` would name a host
        if self._sftp is not False:
            host = self.profile.host
            if ":" in host.rpartition("@")[2]:  # an IPv6 literal
                user, at, address = host.rpartition("@")
                host = f"{user}{at}[{address.strip('[]')}]"
            argv = ["scp", "-q", *self._options(), *self._control(), *self._port("-P"), "--", local,
                    f"{host}:{remote}"]
            completed = self._execute(argv, ["scp", local, remote], self.profile.timeout_s)
            if completed.returncode == 0:
                self._sftp = True
                return
            if self._sftp:  # scp worked before on this device: this failure is real
                self._push_failed(completed, local, remote, what="Copying to the device")
        with open(local, "rb") as source:
            completed = self._execute(self._argv(["sh", "-c", _STREAM_IN, "sh", remote]),
                                      ["cat", ">", remote], self.profile.timeout_s, stdin=source)
        if completed.returncode != 0:
            self._push_failed(completed, local, remote, what="Copying to the device")
        self._sftp = False

    def _classify(self, completed: Completed) -> None:
        if completed.returncode != 255:  # ssh's own failures exit 255
            return
        err = completed.stderr
        host = self.profile.host + (f":{self.profile.port}" if self.profile.port else "")
        if "Host key verification failed" in err or "REMOTE HOST IDENTIFICATION HAS CHANGED" in err:
            raise DeviceError(
                f"The device's ssh host key is unknown or changed, so the connection was refused. Received: {host}.",
                hint=f"Verify the key, then add it: ssh-keyscan{' -p ' + str(self.profile.port) if self.profile.port else ''} "
                f"{self.profile.host.split('@')[-1]} >> ~/.ssh/known_hosts (or set strict_host_key_checking: accept-new).",
                device=self.device)
        if "Permission denied" in err or "Too many authentication failures" in err:
            raise DeviceError(
                f"ssh authentication failed. Received: {host} ({completed.tail(1)}).",
                hint="Load your key into ssh-agent or set IdentityFile in ~/.ssh/config, and install it with ssh-copy-id.",
                device=self.device)
        if any(marker in err for marker in _UNREACHABLE):
            raise DeviceUnreachableError(
                f"Cannot reach the device over ssh. Received: {host} ({completed.tail(1)}).",
                hint="Check it is powered, on the network and running sshd, and the host/port in the profile.",
                device=self.device)
        if self._control_dir is not None:
            if self._master_alive():
                return  # the connection is fine: the command itself exited 255
            raise DeviceUnreachableError(
                f"The connection to the device dropped while a command ran. Received: {host} (ssh exit 255).",
                hint="Check it is still powered and on the network, then run again.", device=self.device)
        raise DeviceError(f"ssh failed. Received: {host} ({completed.tail(2)}).",
                          hint=f"Try `ssh {self.profile.host}` by hand.", device=self.device)

    def _missing_hint(self) -> str:
        return "Install the OpenSSH client (apt-get install openssh-client)."
