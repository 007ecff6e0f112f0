"""Atomic output files: the user's umask, and no partial file when the disk is full."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess

import pytest

from edgeopt import OutputError
from edgeopt import _files
from edgeopt._files import atomic_write_bytes, atomic_write_json


@pytest.fixture
def umask():
    before = os.umask(0o022)
    yield os.umask
    os.umask(before)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_output_files_get_the_users_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = atomic_write_bytes(tmp_path / "model.tflite", b"TFL3")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    atomic_write_json(tmp_path / "report.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == mode


def _fail_after(limit: int):
    """An `os.write` that writes `limit` bytes of the file, then fails with ENOSPC."""
    real_write = os.write
    written = {"n": 0}

    def write(fd, data):
        room = limit - written["n"]
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, bytes(data[:room]))
        written["n"] += n
        return n

    return write


def test_disk_full_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "model.int8.tflite"
    target.write_bytes(b"old complete file")
    monkeypatch.setattr(_files.os, "write", _fail_after(1000))
    with pytest.raises(OutputError, match=r"No space left on device.*model\.int8\.tflite.*ENOSPC") as caught:
        atomic_write_bytes(target, b"x" * 5000)
    assert caught.value.errno == errno.ENOSPC and caught.value.path == str(target)
    assert "\n" not in str(caught.value)
    assert target.read_bytes() == b"old complete file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.int8.tflite"]  # no temporary left behind


def test_read_only_directory_is_an_output_error(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(_files.os, "open", refuse)
    with pytest.raises(OutputError, match="Read-only file system"):
        atomic_write_bytes(tmp_path / "a.bin", b"data")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 8 KiB file system (needs root and `mount`); skipped where it cannot be mounted."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_real_full_file_system(tiny_tmpfs):
    with pytest.raises(OutputError, match="No space left on device"):
        atomic_write_bytes(tiny_tmpfs / "big.tflite", b"x" * 64 * 1024)
    assert list(tiny_tmpfs.iterdir()) == []
    atomic_write_bytes(tiny_tmpfs / "small.json", b"{}")  # the space came back
    assert (tiny_tmpfs / "small.json").read_bytes() == b"{}"
