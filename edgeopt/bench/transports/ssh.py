"""A Linux board over the system OpenSSH clients (`ssh`, `scp`).

Using the system clients means the user's `~/.ssh/config` (aliases, ProxyJump, keys)
and agent work unchanged. `BatchMode=yes` (never prompt), `ConnectTimeout`, and
host-key checking on unless the profile opts out.
"""

from __future__ import annotations

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
        port = ["-p", str(self.profile.port)] if self.profile.port else []
        env = ["env", *(f"{k}={v}" for k, v in self.profile.env.items())] if self.profile.env else []
        return ["ssh", *self._options(), *port, "--", self.profile.host, remote_command_line(env + argv)]

    def push(self, local: str, remote: str) -> None:
        port = ["-P", str(self.profile.port)] if self.profile.port else []
        argv = ["scp", "-q", *self._options(), *port, "--", local, f"{self.profile.host}:{remote}"]
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
