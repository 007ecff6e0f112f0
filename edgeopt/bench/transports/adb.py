"""An Android device over the system `adb` client (`adb -s SERIAL shell/push`)."""

from __future__ import annotations

import os

from edgeopt.bench.transports.base import Completed, Transport, remote_script
from edgeopt.errors import DeviceError, DeviceUnreachableError


class AdbTransport(Transport):
    pid_on_stdout = True  # adb before the shell protocol (Android < 7) merges stderr into stdout

    def _prefix(self) -> list[str]:
        return [self.profile.adb] + (["-s", self.profile.serial] if self.profile.serial else [])

    def _argv(self, argv: list[str]) -> list[str]:
        return [*self._prefix(), "shell", remote_script(argv)]

    def push(self, local: str, remote: str) -> None:
        local = os.path.abspath(local)  # never read as an option
        completed = self._execute([*self._prefix(), "push", local, remote], ["adb push", local, remote],
                                  self.profile.timeout_s)
        self._classify(completed)
        if completed.returncode != 0:
            self._push_failed(completed, local, remote, what="adb push")

    def _classify(self, completed: Completed) -> None:
        err = (completed.stderr or "") + (completed.stdout if completed.returncode else "")
        serial = self.profile.serial
        if "no devices/emulators found" in err or "device not found" in err and not serial:
            raise DeviceUnreachableError(
                "No Android device is attached. Received: `adb devices` lists none.",
                hint="Connect the phone with USB debugging on (or `adb connect HOST:PORT`), then check `adb devices`.",
                device=self.device)
        if "more than one device" in err:
            raise DeviceError(
                "Several Android devices are attached and the profile names none. Received: serial=None.",
                hint="Set `serial:` in the profile to one listed by `adb devices`.", device=self.device)
        if serial and (f"device '{serial}' not found" in err or "device not found" in err):
            raise DeviceUnreachableError(
                f"The Android device is not attached. Received: serial={serial!r}.",
                hint="Check `adb devices` and the profile's serial.", device=self.device)
        if "unauthorized" in err:
            raise DeviceError("The Android device has not authorised this computer. Received: 'unauthorized'.",
                              hint="Unlock the phone and accept the USB debugging prompt.", device=self.device)
        if "device offline" in err:
            raise DeviceUnreachableError("The Android device is offline. Received: 'device offline'.",
                                         hint="Reconnect the cable or run `adb reconnect`.", device=self.device)

    def _missing_hint(self) -> str:
        return "Install adb (apt-get install adb, or Android platform-tools) or set `adb:` in the profile."
