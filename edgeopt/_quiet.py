"""Keeping TensorFlow's own log noise off the user's terminal, unless they ask for it.

TensorFlow 2.21 logs through C++ absl before `absl::InitializeLog()` and ignores
`TF_CPP_MIN_LOG_LEVEL` for those lines (oneDNN, CUDA stubs, cuInit); the TFLite
converter and LiteRT print with C `printf` (`fully_quantize: 0, inference_type: 6 ...`,
`Created TensorFlow Lite XNNPACK delegate`). Python-level redirection cannot see any of
it, so it is caught at the file-descriptor level: fds 1 and 2 point at a temporary file
while the noisy code runs. Python's own `sys.stdout`/`sys.stderr` keep writing to the
terminal, so progress lines and results still show.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from typing import Iterator

_state = {"verbose": False}

# Python loggers and warning sources of TensorFlow and friends.
_LOGGERS = ("tensorflow", "absl", "h5py", "ai_edge_quantizer", "ai_edge_litert")
_WARNING_MODULES = r"(tensorflow|tf_keras|keras|absl|ai_edge_\w+|tensorflow_model_optimization|h5py)(\..*)?$"


def set_verbose(verbose: bool) -> None:
    """Shows (True) or hides (False) TensorFlow's logs for the rest of the process.

    Hiding sets `TF_CPP_MIN_LOG_LEVEL=2` (unless already set; it only helps before
    TensorFlow is imported), quiets TensorFlow's Python loggers and warnings, and makes
    `capture_native_output` capture. Showing leaves all of them as TensorFlow has them.
    """
    _state["verbose"] = bool(verbose)
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=_WARNING_MODULES)


def is_verbose() -> bool:
    return _state["verbose"]


@dataclass
class Captured:
    """What native code wrote to stdout and stderr while it was captured."""

    text: str = ""


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):  # C stdio buffers (printf) of the native libraries
        ctypes.CDLL(None).fflush(None)


def _fd_of(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _text_stream(fd: int, like) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding=getattr(like, "encoding", None) or "utf-8",
                            errors=getattr(like, "errors", None) or "replace", line_buffering=True)


@contextlib.contextmanager
def _redirect_fds(python_to_terminal: bool) -> Iterator[Captured]:
    """Points fds 1 and 2 at a temporary file for the block.

    With `python_to_terminal`, Python's `sys.stdout`/`sys.stderr` (when they are those
    fds) keep writing to where the fds pointed before; otherwise Python's writes go to
    the temporary file as well.
    """
    captured = Captured()
    try:
        sink = tempfile.TemporaryFile()
    except OSError:  # no room for a temporary file: better noise than a failure
        yield captured
        return
    try:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
    except OSError:  # no stdout/stderr at all (a daemon): nothing to hide
        sink.close()
        yield captured
        return
    replaced = {}
    try:
        _flush_all()
        for name, fd in (("stdout", 1), ("stderr", 2)):
            stream = getattr(sys, name)
            if python_to_terminal and _fd_of(stream) == fd:
                replaced[name] = stream
                setattr(sys, name, _text_stream(saved[fd], stream))
            elif not python_to_terminal:
                replaced[name] = stream
                setattr(sys, name, _text_stream(sink.fileno(), stream))
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        yield captured
    finally:
        _flush_all()
        for fd in (1, 2):
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
        for name, stream in replaced.items():
            setattr(sys, name, stream)
        sink.seek(0)
        captured.text = sink.read().decode("utf-8", errors="replace")
        sink.close()


@contextlib.contextmanager
def capture_native_output() -> Iterator[Captured]:
    """Captures everything written to stdout and stderr (C, C++ and Python) inside the block.

    Used around the converter, ai-edge-quantizer and the interpreter. Does nothing in
    verbose mode, so the output shows as it happens.

    Yields:
        A `Captured` whose `text` is filled in when the block ends.
    """
    if is_verbose():
        yield Captured()
        return
    with _redirect_fds(python_to_terminal=False) as captured:
        yield captured


@contextlib.contextmanager
def hide_native_output() -> Iterator[Captured]:
    """For a whole CLI command: native writes to fds 1/2 are hidden, Python's are not.

    Does nothing in verbose mode.
    """
    if is_verbose():
        yield Captured()
        return
    with _redirect_fds(python_to_terminal=True) as captured:
        yield captured
