"""Writing files so that an interrupted run never leaves a half-written one."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edgeopt.errors import ConfigError


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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to a temporary file beside `path`, then renames it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
