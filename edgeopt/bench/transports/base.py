"""What every transport offers: run an argv on the device, push a file, classify failures.

The pieces every transport shares live here once: the `env -- NAME=value` prefix (names
checked by `profiles.validate_env`), the quoting of remote command lines, reading a
command's output with a size cap, and stopping a command — on this machine and on the
device — when it times out, is cancelled, or this process is interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import IO

from edgeopt.bench.profiles import DeviceProfile, validate_env
from edgeopt.errors import DeviceError, RemoteCommandError

MAX_OUTPUT_BYTES = 8 << 20  # per stream; the runner's JSON with 20,000 latencies is ~300 kB
_PID_MARK = b"@@edgeopt-pid "
# Runs first on the device: reports the shell's pid, which is the session's process group
# (sshd and adbd start each command with setsid), then becomes the command itself.
_REPORT_PID = 'echo "@@edgeopt-pid $$" >&2; exec "$@"'
# dash only accepts `kill -s KILL -- -PGID`; other shells' builtins the shorter forms.
_KILL_GROUP = 'kill -s KILL -- "-$1" 2>/dev/null || kill -KILL "-$1" 2>/dev/null || kill -9 "-$1"'


@dataclass
class Completed:
    """A finished command: the argv that ran on the device, exit code and output."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 5) -> str:
        return " | ".join((self.stderr or self.stdout).strip().splitlines()[-lines:])[-1000:]


class HomePath(str):
    """A path from a device profile (`python`, `workdir`) whose leading `~/` means the
    device user's home. Every other argument is inert text, `~` included."""


def with_env(argv: list[str], env: dict[str, str]) -> list[str]:
    """`argv` run under `env -- NAME=value ...` when `env` is not empty.

    `--` ends env's options, and the names are identifiers, so no entry is read as an
    option. An `argv[0]` holding `=` (e.g. `/opt/a=b/python`) would be read as one more
    assignment, so it then runs through `sh -c 'exec "$@"'`.
    """
    if not env:
        return list(argv)
    prefix = ["env", "--", *(f"{k}={v}" for k, v in validate_env(env).items())]
    if argv and "=" in argv[0]:
        prefix += ["sh", "-c", 'exec "$@"', "sh"]
    return [*prefix, *argv]


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


def remote_script(argv: list[str]) -> str:
    """The command line a remote shell runs: report the process group, then exec `argv`."""
    return f"exec sh -c {shlex.quote(_REPORT_PID)} sh {remote_command_line(argv)}"


class _Capture(threading.Thread):
    """Reads one pipe to the end, keeping at most `MAX_OUTPUT_BYTES`, and picks up the
    device-side process group that `remote_script` reports first (on stderr; on stdout
    with adb clients that merge the two)."""

    def __init__(self, pipe: IO[bytes], *, find_pid: bool):
        super().__init__(daemon=True)
        self.pipe, self.find_pid = pipe, find_pid
        self.data = bytearray()
        self.overflow = False
        self.pid: int | None = None

    def run(self) -> None:
        try:
            while block := self.pipe.read1(1 << 16):
                if len(self.data) + len(block) > MAX_OUTPUT_BYTES:
                    self.overflow = True  # keep draining so the command never blocks on a full pipe
                    continue
                self.data += block
                if self.find_pid and self.pid is None:
                    self._pick_pid()
        except (OSError, ValueError):
            pass  # the pipe was closed under us after a kill

    def _pick_pid(self) -> None:
        start = self.data.find(_PID_MARK, 0, 1 << 16)
        end = self.data.find(b"\n", start)
        if start < 0 and len(self.data) >= 1 << 16:
            self.find_pid = False  # it comes first or not at all
        elif start >= 0 and end > start:
            word = bytes(self.data[start + len(_PID_MARK):end])
            if word.isdigit() and len(word) < 10 and int(word) > 1:  # never -1 / -0: every process
                self.pid = int(word)
            del self.data[start:end + 1]
            self.find_pid = False

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class Transport(ABC):
    """Runs commands and copies files to one device. Never builds shell strings from
    user input: local commands are argv lists, remote ones are `shlex.quote`d.

    Args:
        profile: the device profile.
        cancel: set it (from any thread) to stop the running command and refuse new
            ones; `DeviceSession` passes the one `bench` sets on Ctrl-C. Defaults to `None`.
    """

    remote = True  # commands run through a remote shell (ssh, adb), not directly here
    pid_on_stdout = False  # old adb clients merge the remote stderr into stdout

    def __init__(self, profile: DeviceProfile, *, cancel: threading.Event | None = None):
        self.profile = profile
        self.cancel = cancel or threading.Event()

    @property
    def device(self) -> str:
        return self.profile.name

    @abstractmethod
    def _argv(self, argv: list[str]) -> list[str]:
        """The local argv that runs `argv` (already under `with_env`) on the device."""

    @abstractmethod
    def push(self, local: str, remote: str) -> None:
        """Copies a local file to a path on the device."""

    def _classify(self, completed: Completed) -> None:
        """Raises the transport's own error (unreachable, auth...) if `completed` shows one."""

    def close(self) -> None:
        """Releases what the transport holds open (an ssh master connection)."""

    def run(self, argv: list[str], *, timeout_s: float | None = None, check: bool = True,
            cancellable: bool = True) -> Completed:
        """Runs `argv` on the device and returns its output.

        Raises:
            DeviceUnreachableError / DeviceError: the transport failed (see `_classify`),
                or the run was cancelled.
            RemoteCommandError: the command exited non-zero (with `check`), timed out or
                printed more than `MAX_OUTPUT_BYTES`; it was stopped on the device.
        """
        local_argv = self._argv(with_env(argv, self.profile.env))
        completed = self._execute(local_argv, argv, timeout_s or self.profile.timeout_s, cancellable=cancellable)
        self._classify(completed)
        if check and completed.returncode != 0:
            raise RemoteCommandError(
                f"Command failed on the device with exit code {completed.returncode}. "
                f"Received: {shlex.join(argv)} -> {completed.tail() or 'no output'}.",
                hint="Run the command by hand on the device to see why.",
                device=self.device, command=argv, exit_code=completed.returncode, stderr_tail=completed.tail(),
            )
        return completed

    def _execute(self, local_argv: list[str], argv: list[str], timeout_s: float, *, stdin: IO[bytes] | None = None,
                 cancellable: bool = True) -> Completed:
        if cancellable and self.cancel.is_set():
            raise self._cancelled(argv)
        try:
            # A session of its own: Ctrl-C in a terminal reaches only edgeopt, which then
            # stops the whole group here and the command's process group on the device.
            proc = subprocess.Popen(local_argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except FileNotFoundError as exc:
            raise self._program_missing(local_argv[0]) from exc
        except OSError as exc:
            raise DeviceError(f"Cannot start a program on this machine. Received: {local_argv[0]!r} "
                              f"({exc.strerror or exc}).", hint=self._missing_hint(), device=self.device) from exc
        out = _Capture(proc.stdout, find_pid=self.remote and self.pid_on_stdout)
        err = _Capture(proc.stderr, find_pid=self.remote)
        out.start()
        err.start()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    proc.wait(timeout=0.05)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if out.overflow or err.overflow or (cancellable and self.cancel.is_set()) \
                        or time.monotonic() > deadline:
                    break
        except BaseException:  # KeyboardInterrupt included: nothing of ours keeps running
            self._stop(proc, err, out)
            raise
        if proc.returncode is None:
            self._stop(proc, err, out)
            if out.overflow or err.overflow:
                raise self._too_much_output(argv, ", so it was stopped")
            if cancellable and self.cancel.is_set():
                raise self._cancelled(argv)
            raise RemoteCommandError(
                f"Command timed out after {timeout_s:g} s and was stopped on the device. "
                f"Received: {shlex.join(argv)}.", hint="Raise the profile's timeout_s, or lower --runs/--min-secs.",
                device=self.device, command=argv)
        for capture in (out, err):
            capture.join(timeout=10)
        if out.is_alive() or err.is_alive():  # a background child still holds the pipes
            self._kill_local(proc)
            out.join(timeout=2)
            err.join(timeout=2)
        for capture in (out, err):
            if not capture.is_alive():
                capture.pipe.close()
        if out.overflow or err.overflow:
            raise self._too_much_output(argv)
        return Completed(argv=argv, returncode=proc.returncode, stdout=out.text(), stderr=err.text())

    def _stop(self, proc: subprocess.Popen, err: _Capture, out: _Capture) -> None:
        """Kills the local process group, then the command's process group on the device."""
        if self.remote:  # a command stopped just as it started: let its pid arrive first
            waited = time.monotonic() + 2
            while (err.pid or out.pid) is None and (err.find_pid or out.find_pid) and proc.poll() is None \
                    and time.monotonic() < waited:
                time.sleep(0.02)
        self._kill_local(proc)
        pid = err.pid or out.pid
        if self.remote and pid is not None:
            try:
                self._execute(self._argv(["sh", "-c", _KILL_GROUP, "sh", str(pid)]), ["kill", str(pid)],
                              self.profile.connect_timeout_s + 15, cancellable=False)
            except DeviceError:
                pass  # the device went away: nothing of ours can run there either

    @staticmethod
    def _kill_local(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def _cancelled(self, argv: list[str]) -> DeviceError:
        return DeviceError(f"Interrupted, so the command was stopped on the device. Received: {shlex.join(argv)}.",
                           hint="Run the benchmark again.", device=self.device)

    def _too_much_output(self, argv: list[str], stopped: str = "") -> RemoteCommandError:
        return RemoteCommandError(f"The command printed more than {MAX_OUTPUT_BYTES >> 20} MiB{stopped}. "
                                  f"Received: {shlex.join(argv)}.",
                                  hint="Check what it prints when run by hand on the device.",
                                  device=self.device, command=argv)

    def _program_missing(self, program: str) -> DeviceError:
        """The error for a client program (`ssh`, `adb`) missing on this machine."""
        return DeviceError(f"Program not found on this machine. Received: {program!r}.", hint=self._missing_hint(),
                           device=self.device)

    def _push_failed(self, completed: Completed, local: str, remote: str, *, what: str) -> None:
        """Raises the transport's own error for a failed copy, else a `DeviceError`
        naming both paths (`what` failed, e.g. "adb push")."""
        self._classify(completed)
        raise DeviceError(f"{what} failed. Received: {shlex.quote(local)} -> {shlex.quote(remote)}: "
                          f"{completed.tail()}.", hint="Check that the workdir exists and is writable.",
                          device=self.device)

    def _missing_hint(self) -> str:
        return "Install it or fix the profile's path."
