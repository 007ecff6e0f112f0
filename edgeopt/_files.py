"""Writing files so that an interrupted run never leaves a half-written one."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from edgeopt.errors import ConfigError, OutputError


def ensure_writable_dir(path: str | os.PathLike, *, what: str = "output directory") -> Path:
    """Creates `path` if needed and proves it writable by creating a file in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".edgeopt-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"The {what} cannot be written. Received: {str(path)!r} ({exc.strerror or exc}). "
            "Pass a directory you can write to."
        ) from exc
    return path


def _temp_beside(path: Path) -> tuple[int, Path]:
    """Creates a new, empty temporary file beside `path`, with the user's umask applied.

    `tempfile.mkstemp` would create it 0600, so every output would end up unreadable
    to the group and others whatever the umask says; `os.open` with 0o666 lets the
    kernel apply the umask (and any default ACL) as for any other new file.
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to a temporary file beside `path`, then renames it into place.

    The file gets the permissions of any new file (0666 less the umask). On any
    failure the temporary file is removed and `path` is left as it was.

    Raises:
        OutputError: the file cannot be written (disk full, read-only, no permission).
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = _temp_beside(path)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            reason = exc.strerror or type(exc).__name__
            code = errno.errorcode.get(exc.errno, "") if exc.errno else ""
            raise OutputError(
                f"Cannot write an output file: {reason}. Received: {str(path)!r} ({len(data)} bytes"
                f"{', ' + code if code else ''}). Free some space or pick another output directory you can write to.",
                path=str(path), errno=exc.errno,
            ) from exc
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gzip_size(data: bytes) -> int:
    """Size of `data` after gzip at the default level: what a download or OTA costs."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))
