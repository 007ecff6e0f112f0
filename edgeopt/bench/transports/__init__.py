"""Transports: how commands and files reach a device (local, ssh, adb)."""

from __future__ import annotations

import threading

from edgeopt.bench.profiles import DeviceProfile, TransportKind
from edgeopt.bench.transports.base import Completed, HomePath, Transport, remote_command_line, with_env


def make_transport(profile: DeviceProfile, *, cancel: threading.Event | None = None) -> Transport:
    """The transport for `profile`; setting `cancel` stops its running command."""
    if profile.transport is TransportKind.SSH:
        from edgeopt.bench.transports.ssh import SshTransport

        return SshTransport(profile, cancel=cancel)
    if profile.transport is TransportKind.ADB:
        from edgeopt.bench.transports.adb import AdbTransport

        return AdbTransport(profile, cancel=cancel)
    from edgeopt.bench.transports.local import LocalTransport

    return LocalTransport(profile, cancel=cancel)


__all__ = ["Completed", "HomePath", "Transport", "make_transport", "remote_command_line", "with_env"]
