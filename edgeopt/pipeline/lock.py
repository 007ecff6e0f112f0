"""`RunLock`: one `edgeopt run` at a time per run directory.

Two runs writing one directory interleave their stages: each rewrites
`manifest.json` from its own memory, so the manifest ends up with sha256s of files
the other run has since replaced, and a `bench.json` that measured another
`.tflite` than the one on disk. The lock is an OS file lock (`fcntl.flock`, or
`msvcrt.locking` on Windows) on `<run_dir>/.edgeopt.lock`, held for the whole run:
the kernel drops it when the process ends, however it ends, so a crashed run never
leaves a stale lock behind. The file itself stays, with the holder's pid for messages.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from edgeopt.errors import ConfigError
from edgeopt.pipeline.layout import LOCK


class RunLock:
    """An exclusive, non-blocking lock on a run directory, as a context manager.

    Args:
        run_dir: the run directory (it must exist).

    Raises:
        ConfigError: on entry, when another process holds the lock.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"The run directory cannot be locked. Received: {str(self.run_dir)!r} "
                              f"({exc.strerror or exc}). Pass a directory you can write to.") from None
        try:
            _lock(fd)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise ConfigError(f"Another edgeopt run is using this run directory{holder}. Received: "
                              f"{str(self.run_dir)!r}. Wait for it to finish, or pass a different --out.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc_info) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)
                _unlock(fd)
            finally:
                os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except (OSError, AttributeError):
        return ""
    if len(text) >= 2 and text[0].isdigit():
        return f" (pid {text[0]} on {text[1]})"
    return ""


try:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
