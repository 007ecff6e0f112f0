"""Transports: how commands and files reach a device (local, ssh, adb)."""

from __future__ import annotations

from edgeopt.bench.profiles import DeviceProfile, TransportKind
from edgeopt.bench.transports.base import Completed, HomePath, Transport, remote_command_line


def make_transport(profile: DeviceProfile) -> Transport:
    if profile.transport is TransportKind.SSH:
        from edgeopt.bench.transports.ssh import SshTransport

        return SshTransport(profile)
    if profile.transport is TransportKind.ADB:
        from edgeopt.bench.transports.adb import AdbTransport

        return AdbTransport(profile)
    from edgeopt.bench.transports.local import LocalTransport

    return LocalTransport(profile)


__all__ = ["Completed", "HomePath", "Transport", "make_transport", "remote_command_line"]
