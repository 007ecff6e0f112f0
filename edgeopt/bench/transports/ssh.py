"""A Linux board over the system OpenSSH clients (`ssh`, `scp`).

Using the system clients means the user's `~/.ssh/config` (aliases, ProxyJump, keys)
and agent work unchanged. `BatchMode=yes` (never prompt), `ConnectTimeout`, and
host-key checking on unless the profile opts out. One master connection per session
(OpenSSH's ControlMaster) carries every command and copy, so a benchmark pays for one
handshake instead of eight.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from edgeopt.bench.transports.base import Completed, Transport, remote_command_line
from edgeopt.errors import ConfigError, DeviceError, DeviceUnreachableError

_UNREACHABLE = ("Connection refused", "Connection timed out", "timed out", "No route to host",
                "Could not resolve hostname", "Network is unreachable", "Connection reset",
                "Connection closed by", "kex_exchange_identification")


class SshTransport(Transport):
    def __init__(self, profile):
        super().__init__(profile)
        if profile.host.startswith("-"):
            raise ConfigError(f"Bad ssh host. Received: host={profile.host!r}. A host cannot start with '-'.")
        self._control_dir: str | None = None

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
                        f"ControlPath={path}", "-o", "ControlPersist=120", "-N", "-f", "--", self.profile.host]
                try:
                    code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                          timeout=self.profile.connect_timeout_s + 20).returncode
                except subprocess.TimeoutExpired:
                    code = 255
                    log.write("Connection timed out while opening the master connection")
                except FileNotFoundError as exc:
                    raise DeviceError(f"Program not found on this machine. Received: 'ssh'. {self._missing_hint()}",
                                      device=self.device) from exc
                log.seek(0)
                stderr = log.read()
            if code != 0:
                shutil.rmtree(self._control_dir, ignore_errors=True)
                self._control_dir = None
                self._classify(Completed(argv=["ssh"], returncode=255, stdout="", stderr=stderr))
                raise DeviceError(f"ssh failed. Received: {stderr.strip()[-200:]!r}. "
                                  f"Try `ssh {self.profile.host}` by hand.", device=self.device)
        return ["-o", "ControlMaster=no", "-o", f"ControlPath={Path(self._control_dir) / 'master'}"]

    def close(self) -> None:
        if self._control_dir is None:
            return
        subprocess.run(["ssh", "-o", f"ControlPath={Path(self._control_dir) / 'master'}", "-O", "exit", "--",
                        self.profile.host], capture_output=True, stdin=subprocess.DEVNULL, timeout=15)
        shutil.rmtree(self._control_dir, ignore_errors=True)
        self._control_dir = None

    def _options(self) -> list[str]:
        p = self.profile
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, int(p.connect_timeout_s))}",
                   "-o", f"StrictHostKeyChecking={p.strict_host_key_checking}"]
        if p.known_hosts_file:
            options += ["-o", f"UserKnownHostsFile={p.known_hosts_file}"]
        if p.identity_file:
            options += ["-i", p.identity_file, "-o", "IdentitiesOnly=yes"]
        return options

    def _argv(self, argv: list[str]) -> list[str]:
        env = ["env", *(f"{k}={v}" for k, v in self.profile.env.items())] if self.profile.env else []
        return ["ssh", *self._options(), *self._control(), *self._port(), "--", self.profile.host,
                remote_command_line(env + argv)]

    def push(self, local: str, remote: str) -> None:
        argv = ["scp", "-q", *self._options(), *self._control(), *self._port("-P"), "--", local,
                f"{self.profile.host}:{remote}"]
        completed = self._execute(argv, ["scp", local, remote], self.profile.timeout_s)
        self._classify(completed)
        if completed.returncode != 0:
            raise DeviceError(f"Copying to the device failed. Received: scp {local} -> {remote}: {completed.tail()}. "
                              "Check that the workdir exists and is writable.", device=self.device)

    def _classify(self, completed: Completed) -> None:
        if completed.returncode != 255:  # ssh's own failures exit 255
            return
        err = completed.stderr
        host = self.profile.host + (f":{self.profile.port}" if self.profile.port else "")
        if "Host key verification failed" in err or "REMOTE HOST IDENTIFICATION HAS CHANGED" in err:
            raise DeviceError(
                f"The device's ssh host key is unknown or changed, so the connection was refused. Received: {host}. "
                f"Verify the key, then add it: ssh-keyscan{' -p ' + str(self.profile.port) if self.profile.port else ''} "
                f"{self.profile.host.split('@')[-1]} >> ~/.ssh/known_hosts (or set strict_host_key_checking: accept-new).",
                device=self.device)
        if "Permission denied" in err or "Too many authentication failures" in err:
            raise DeviceError(
                f"ssh authentication failed. Received: {host} ({completed.tail(1)}). "
                "Load your key into ssh-agent or set IdentityFile in ~/.ssh/config, and install it with ssh-copy-id.",
                device=self.device)
        if any(marker in err for marker in _UNREACHABLE):
            raise DeviceUnreachableError(
                f"Cannot reach the device over ssh. Received: {host} ({completed.tail(1)}). "
                "Check it is powered, on the network and running sshd, and the host/port in the profile.",
                device=self.device)
        raise DeviceError(f"ssh failed. Received: {host} ({completed.tail(2)}). Try `ssh {self.profile.host}` by hand.",
                          device=self.device)

    def _missing_hint(self) -> str:
        return "Install the OpenSSH client (apt-get install openssh-client)."
