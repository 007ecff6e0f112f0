"""A throwaway OpenSSH server on 127.0.0.1 for trying and testing the ssh transport.

It runs Debian's real `sshd` on an unprivileged port with temporary host keys, a
temporary client key in `authorized_keys` and a matching `known_hosts`, all under one
directory. `sftp=False` leaves out `Subsystem sftp`, as on dropbear-based boards (where
OpenSSH >= 9's scp fails). Used by the test suite and `tools/benchmarks/harness_fidelity.py`;
run it by hand to try `edgeopt bench` over ssh without a board:

    python tools/loopback_sshd.py /tmp/sshd-demo    # prints a device profile, Ctrl-C stops
    python tools/loopback_sshd.py /tmp/sshd-demo --no-sftp
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_sshd() -> str | None:
    return shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.path.exists(p)), None)


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeopt-test", "-f", str(path)], check=True)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class LoopbackSshd:
    """Starts `sshd -D` on 127.0.0.1:<free port>; `stop()` (or the context manager) ends it.

    Args:
        root: directory for keys, config and logs.
        sftp: serve the sftp subsystem. Defaults to `True`.
    """

    def __init__(self, root: str | os.PathLike, *, sftp: bool = True):
        self.root = Path(root)
        self.sftp = sftp
        self.port = free_port()
        self.user = getpass.getuser()
        self.host_key = self.root / "host_ed25519"
        self.client_key = self.root / "client_ed25519"
        self.known_hosts = self.root / "known_hosts"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 10.0) -> "LoopbackSshd":
        sshd = find_sshd()
        if sshd is None:
            raise RuntimeError("sshd not found: apt-get install openssh-server")
        self.root.mkdir(parents=True, exist_ok=True)
        for key in (self.host_key, self.client_key):
            if not key.exists():
                keygen(key)
        (self.root / "authorized_keys").write_text((self.root / "client_ed25519.pub").read_text())
        host_pub = (self.root / "host_ed25519.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        config = self.root / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.root / 'sshd.pid'}", f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password", f"AllowUsers {self.user}",
            *(["Subsystem sftp internal-sftp"] if self.sftp else []), "LogLevel ERROR", "MaxStartups 50:30:100", "",
        ]))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation directory
        self.process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.root / "sshd.log", "w"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("sshd did not start listening in time")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def kill_all(self) -> None:
        """SIGKILLs sshd and everything it started (sessions and their commands): the
        "device" is gone, as when a board loses power mid-benchmark."""
        if self.process is None:
            return
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        self.process = None

    def __enter__(self) -> "LoopbackSshd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def profile_fields(self, **overrides) -> dict:
        """Device-profile fields that reach this server with host-key checking on."""
        fields = {"transport": "ssh", "host": f"{self.user}@127.0.0.1", "port": self.port,
                  "identity_file": str(self.client_key), "known_hosts_file": str(self.known_hosts),
                  "connect_timeout_s": 5, "workdir": str(self.root / "device-workdir")}
        fields.update(overrides)
        return fields


if __name__ == "__main__":
    import yaml

    args = [a for a in sys.argv[1:] if a != "--no-sftp"]
    root = Path(args[0] if args else "/tmp/edgeopt-sshd")
    with LoopbackSshd(root, sftp="--no-sftp" not in sys.argv) as server:
        profile = root / "loopback.yaml"
        profile.write_text(yaml.safe_dump(dict(server.profile_fields(), python=sys.executable)))
        print(f"sshd on 127.0.0.1:{server.port}; profile written to {profile}")
        print(f"try: edgeopt devices check {profile}")
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
