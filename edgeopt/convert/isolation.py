"""Running the conversions in a child process, so a crash there fails one precision only.

The TFLite converter and the LiteRT interpreter are C++ that can segfault or abort
(a batch-1 LSTM, an int16x8 LayerNormalization); in the exporter's own process that
would end the export with no files and no report. So every conversion and LiteRT run
happens in `python -m edgeopt.convert._worker`:

- one child for all precisions, started before the model is traced so that its
  TensorFlow import overlaps the tracing (the successful path stays fast);
- when it dies (signal, non-zero exit) or runs past `timeout_s` on one precision,
  that precision becomes a failed result with the signal name and the tail of what
  the child printed, and a fresh child makes the precisions still missing;
- a child that finished its job is kept (idle, for up to 10 minutes) for the next
  export in the same process, which then skips the TensorFlow import (`acquire`,
  `release`): a pipeline exporting several variants pays it once.

The standard library's `subprocess` is enough here; `multiprocessing` would pickle
the job and hide the child's exit signal behind its own machinery.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import edgeopt
from edgeopt import _quiet
from edgeopt.convert.job import Job, failed_result
from edgeopt.errors import ConversionError

Progress = Callable[[str], None]
_TAIL_CHARS = 2000
# A child's TensorFlow import and start, before it begins a precision (timeout_s counts from there).
_START_TIMEOUT_S = 600.0


def _child_env() -> dict[str, str]:
    """The parent's environment, TensorFlow quiet, and this very edgeopt importable.

    A source checkout (or editable install) goes first on PYTHONPATH so the child runs
    the same code as the parent; an installed edgeopt (in site-packages) is found anyway,
    and putting site-packages before the standard library could shadow it.
    """
    env = dict(os.environ)
    root = str(Path(edgeopt.__file__).resolve().parent.parent)
    places = [*getattr(site, "getsitepackages", lambda: [])(), site.getusersitepackages()]
    installed = {str(Path(p).resolve()) for p in places}
    if root not in installed:
        env["PYTHONPATH"] = os.pathsep.join([root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                     if p and p != root]])
    if not _quiet.is_verbose():
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def describe_exit(code: int) -> str:
    """"was killed by SIGSEGV" / "exited with code 3" for a child's return code."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Outcome:
    """How a job ended: finished, or with the child dead while on `precision` (at `step`)."""

    ok: bool
    reason: str = ""
    precision: str | None = None
    step: str = "converting"


def parse_status(data: bytes) -> tuple[list[dict], bytes]:
    """The complete JSON-object lines of `data`, and the unfinished rest; anything else is skipped."""
    *lines, rest = data.split(b"\n")
    events = []
    for line in lines:
        try:
            event = json.loads(line.decode("utf-8", errors="replace"))
        except (ValueError, RecursionError):
            continue
        if isinstance(event, dict):
            events.append(event)
    return events, rest[-1_000_000:]


class Worker:
    """One child process; it starts importing TensorFlow at once and then takes jobs.

    Its output goes to a log file of its own (the tail of which explains a crash), or
    to the terminal with `--verbose`.
    """

    def __init__(self):
        self.env = _child_env()
        self.verbose = _quiet.is_verbose()
        self._log_dir = self.log_path = log = None
        if not self.verbose:
            try:
                self._log_dir = tempfile.mkdtemp(prefix="edgeopt-convert-")
                self.log_path = Path(self._log_dir) / "worker.log"
                log = open(self.log_path, "ab")  # appends: truncating it per job works
            except OSError:  # no room for a log: the child still runs, its last words are lost
                self._remove_log()
                self.log_path, log = None, subprocess.DEVNULL
        read_fd, write_fd = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "edgeopt.convert._worker", "--status-fd", str(write_fd)],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT if log is not None else None,
                pass_fds=(write_fd,), env=self.env,
            )
        except OSError as exc:
            os.close(read_fd)
            self._remove_log()
            raise ConversionError(
                f"Cannot start the conversion process. Received: {exc.strerror or exc} for {sys.executable!r}. "
                "Check that this Python can start another process (free memory, process limits)."
            ) from exc
        except BaseException:
            os.close(read_fd)
            self._remove_log()
            raise
        finally:
            os.close(write_fd)
            if log is not None and log is not subprocess.DEVNULL:
                log.close()
        self._status: int | None = read_fd
        self._buffer = b""

    def alive(self) -> bool:
        return self._status is not None and self.process.poll() is None

    def tail(self) -> str:
        """The last characters the child printed (empty with --verbose: they are on screen)."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _TAIL_CHARS))
            return log.read().decode("utf-8", errors="replace")

    def _events(self, wait_s: float) -> tuple[list[dict], bool]:
        """Status events that arrive within `wait_s`, and whether the child closed its end."""
        ready, _, _ = select.select([self._status], [], [], max(wait_s, 0.0))
        if not ready:
            return [], False
        chunk = os.read(self._status, 65536)
        events, self._buffer = parse_status(self._buffer + chunk)
        return events, not chunk

    def run(self, job_path: Path, timeout_s: float, say: Progress) -> Outcome:
        """Hands the child a job and follows it until it finishes, dies, or a precision times out."""
        outcome = Outcome(ok=False)
        if self.log_path is not None:
            with contextlib.suppress(OSError):
                os.truncate(self.log_path, 0)  # the tail of this job only
        try:
            self.process.stdin.write(f"{job_path}\n".encode())
            self.process.stdin.flush()
        except OSError:  # it died before it could take the job
            pass
        deadline = time.monotonic() + max(timeout_s, _START_TIMEOUT_S)
        while True:
            events, closed = self._events(min(1.0, deadline - time.monotonic()))
            for event in events:
                if "begin" in event:
                    outcome.precision, outcome.step = str(event["begin"]), str(event.get("step", "converting"))
                    deadline = time.monotonic() + timeout_s
                elif "say" in event:
                    say(str(event["say"]))
                elif "done" in event:
                    outcome.precision = None
                elif "finished" in event:
                    outcome.ok = True
                    return outcome
            if closed or (self.process.poll() is not None and not events):
                break
            if time.monotonic() > deadline:
                self.close()
                outcome.reason = (f"took longer than timeout_s={timeout_s:g}" if outcome.precision
                                  else f"did not start within {max(timeout_s, _START_TIMEOUT_S):g} s")
                return outcome
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.close()
            code = self.process.returncode
        outcome.reason = describe_exit(code)
        return outcome

    def _remove_log(self) -> None:
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def close(self) -> None:
        """Ends the child (if it still runs) and frees its pipe and log."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        if self._status is not None:
            os.close(self._status)
            self._status = None
        self._remove_log()


_spare: dict[str, Worker] = {}
_spare_lock = threading.Lock()


def acquire() -> Worker:
    """A child for one export: the idle one the last export left, if it still fits, else a new one.

    A kept child saves the next export in this process its TensorFlow import; it fits
    when it is alive and was started with the same environment and verbosity.
    """
    with _spare_lock:
        worker = _spare.pop("worker", None)
    if worker is not None:
        if worker.alive() and worker.env == _child_env() and worker.verbose == _quiet.is_verbose():
            return worker
        worker.close()
    return Worker()


def release(worker: Worker) -> None:
    """Keeps a healthy child for the next export (ending the one kept before); ends a dead one."""
    if not worker.alive():
        worker.close()
        return
    with _spare_lock:
        previous, _spare["worker"] = _spare.get("worker"), worker
    if previous is not None and previous is not worker:
        previous.close()


@atexit.register
def _close_spare() -> None:
    with _spare_lock:
        worker = _spare.pop("worker", None)
    if worker is not None:
        worker.close()


# TensorFlow's routine start-up and progress lines, which say nothing about a crash.
_NOISE = re.compile(r"^([IWE]\d{4} |WARNING: All log messages|INFO: Created TensorFlow Lite|fully_quantize:|"
                    r"To enable the following instructions|Saved artifact at)")


def _last_line(text: str) -> str:
    """The last line the child printed that is not TensorFlow's routine noise."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip() and not _NOISE.match(line)]
    return lines[-1][:200].rstrip(".") if lines else ""


def convert_isolated(job: Job, worker: Worker, *, timeout_s: float, say: Progress) -> None:
    """Makes every precision of `job` in child processes, starting with `worker` (which it takes over).

    On return each precision (and float32) has a result in the job directory: made,
    failed by its own error, or failed because its child died or timed out.
    """
    wanted = ["float32", *[p for p in job.precisions if p != "float32"]]
    job_path = job.save()
    try:
        while True:
            outcome = worker.run(job_path, timeout_s, say)
            tail = worker.tail()
            if outcome.ok:
                release(worker)
            else:
                worker.close()
            missing = [p for p in wanted if job.read_result(p) is None]
            if not missing:
                return
            culprit = outcome.precision
            if outcome.ok or culprit is None:
                # It finished without them, or died outside any precision (while starting): a fresh
                # child would do the same, so the missing precisions fail with what it printed.
                reason = "finished without a result" if outcome.ok else outcome.reason
                for precision in missing:
                    job.write_result(precision, failed_result(
                        precision, f"The conversion process {reason} before {precision} was made. "
                        f"Received: {_last_line(tail) or 'no message before it ended'}. Run with --verbose to see "
                        "its whole output.", stderr_tail=tail))
                return
            what = "validating it in LiteRT" if outcome.step == "validating" else "converting it"
            job.write_result(culprit, failed_result(
                culprit,
                f"The conversion process {outcome.reason} while {what}: a crash or hang in TensorFlow's converter "
                f"or LiteRT for this model at {culprit}. Received: {_last_line(tail) or 'no message before it died'}"
                ". The other precisions are unaffected; try another precision, or report it with this entry's "
                "stderr_tail.", stderr_tail=tail))
            say(f"{culprit}: FAILED: the conversion process {outcome.reason}")
            missing = [p for p in wanted if job.read_result(p) is None]
            if not missing:
                return
            say(f"starting a fresh conversion process for {', '.join(missing)}")
            worker = Worker()
    except BaseException:
        worker.close()
        raise
