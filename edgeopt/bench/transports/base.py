"""What every transport offers: run an argv on the device, push a file, classify failures."""

from __future__ import annotations

import shlex
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass

from edgeopt.bench.profiles import DeviceProfile
from edgeopt.errors import DeviceError, RemoteCommandError


@dataclass
class Completed:
    """A finished command: the argv that ran on the device, exit code and output."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 5) -> str:
        return " | ".join((self.stderr or self.stdout).strip().splitlines()[-lines:])


class HomePath(str):
    """A path from a device profile (`python`, `workdir`) whose leading `~/` means the
    device user's home. Every other argument is inert text, `~` included."""


def remote_command_line(argv: list[str]) -> str:
    """One shell command line for a remote shell, every argument quoted.

    A `HomePath` starting with `~/` keeps its home-directory meaning as
    `"$HOME"/'rest'`; everything else is quoted as is.
    """
    parts = []
    for arg in argv:
        if isinstance(arg, HomePath) and arg.startswith("~/"):
            parts.append('"$HOME"/' + shlex.quote(arg[2:]))
        else:
            parts.append(shlex.quote(arg))
    return " ".join(parts)


class Transport(ABC):
    """Runs commands and copies files to one device. Never builds shell strings from
    user input: local commands are argv lists, remote ones are `shlex.quote`d."""

    def __init__(self, profile: DeviceProfile):
        self.profile = profile

    @property
    def device(self) -> str:
        return self.profile.name

    @abstractmethod
    def _argv(self, argv: list[str]) -> list[str]:
        """The local argv that runs `argv` on the device."""

    @abstractmethod
    def push(self, local: str, remote: str) -> None:
        """Copies a local file to a path on the device."""

    def _classify(self, completed: Completed) -> None:
        """Raises the transport's own error (unreachable, auth...) if `completed` shows one."""

    def close(self) -> None:
        """Releases what the transport holds open (an ssh master connection)."""

    def run(self, argv: list[str], *, timeout_s: float | None = None, check: bool = True) -> Completed:
        """Runs `argv` on the device and returns its output.

        Raises:
            DeviceUnreachableError / DeviceError: the transport failed (see `_classify`).
            RemoteCommandError: the command exited non-zero (with `check`) or timed out.
        """
        local_argv = self._argv(argv)
        completed = self._execute(local_argv, argv, timeout_s or self.profile.timeout_s)
        self._classify(completed)
        if check and completed.returncode != 0:
            raise RemoteCommandError(
                f"Command failed on the device with exit code {completed.returncode}. "
                f"Received: {shlex.join(argv)} -> {completed.tail() or 'no output'}. "
                "Run the command by hand on the device to see why.",
                device=self.device, command=argv, exit_code=completed.returncode, stderr_tail=completed.tail(),
            )
        return completed

    def _execute(self, local_argv: list[str], argv: list[str], timeout_s: float) -> Completed:
        try:
            proc = subprocess.run(local_argv, capture_output=True, text=True, timeout=timeout_s,
                                  stdin=subprocess.DEVNULL, errors="replace")
        except subprocess.TimeoutExpired as exc:
            raise RemoteCommandError(
                f"Command timed out after {timeout_s:g} s. Received: {shlex.join(argv)}. "
                "Raise the profile's timeout_s, or lower --runs/--min-secs.",
                device=self.device, command=argv,
            ) from exc
        except FileNotFoundError as exc:
            raise DeviceError(
                f"Program not found on this machine. Received: {local_argv[0]!r}. {self._missing_hint()}",
                device=self.device,
            ) from exc
        return Completed(argv=argv, returncode=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)

    def _missing_hint(self) -> str:
        return "Install it or fix the profile's path."
