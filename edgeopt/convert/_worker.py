"""The exporter's child process: converts and runs every precision of one job.

A converter segfault or a LiteRT abort (both seen: a batch-1 LSTM, an int16x8
LayerNormalization) kills this process, not the export: the parent records the
precision it was working on as failed and starts a fresh child for the rest.

    python -m edgeopt.convert._worker --status-fd FD

It imports TensorFlow first (while the parent traces the model), then reads the paths
of `job.json` files on stdin, one per export, and writes JSON lines to FD:
`{"ready": true}`, `{"begin": precision, "step": ...}`, `{"say": line}`,
`{"done": precision}`, `{"finished": job}`. Results go to the job directory (see
`edgeopt.convert.job`). It ends when stdin closes, after `--idle-s` without a job, or
when its parent is gone.

For tests only, `EDGEOPT_TEST_CRASH_PRECISION=<precision>` makes this process kill
itself with SIGSEGV when it begins that precision, and `EDGEOPT_TEST_HANG_PRECISION`
makes it sleep there, so crash isolation and the timeout can be tested with a real
dead or stuck process. Nothing else reads them.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import stat
import sys
import threading
import time

CRASH_VARIABLE = "EDGEOPT_TEST_CRASH_PRECISION"
IDLE_S = 600.0  # an idle child waits this long for its parent's next export, then ends
HANG_VARIABLE = "EDGEOPT_TEST_HANG_PRECISION"


class _Status:
    def __init__(self, fd: int):
        self._stream = os.fdopen(fd, "w", buffering=1, encoding="utf-8")

    def send(self, **event) -> None:
        self._stream.write(json.dumps(event) + "\n")
        self._stream.flush()


def _watch_parent() -> None:
    """Ends this process when the exporter that started it is gone (no orphans)."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=watch, daemon=True).start()


def _inject_fault(precision: str) -> None:
    if os.environ.get(CRASH_VARIABLE) == precision:
        import resource
        import signal

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file for a deliberate crash
        os.kill(os.getpid(), signal.SIGSEGV)
    if os.environ.get(HANG_VARIABLE) == precision:
        time.sleep(3600)


def _log_tail(limit: int = 2000) -> str:
    """What this process printed last (its stdout/stderr are the parent's log file)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        if not stat.S_ISREG(os.fstat(2).st_mode):  # a terminal (--verbose): it is on screen already
            return ""
        with open("/proc/self/fd/2", "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - limit))
            return log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _next_job(idle_s: float) -> str | None:
    """The next job path from stdin; None when the parent closed it or sent none for `idle_s`."""
    ready, _, _ = select.select([sys.stdin], [], [], idle_s)
    if not ready:
        return None
    line = sys.stdin.readline()
    return line.strip() if line else None


def _run_job(job, status: _Status) -> None:
    from edgeopt.convert.conversion import Conversion
    from edgeopt.convert.job import failed_result
    from edgeopt.errors import EdgeoptError

    conversion = Conversion(job, say=lambda text: status.send(say=text),
                            step=lambda precision, step: status.send(begin=precision, step=step))
    for precision in ["float32", *[p for p in job.precisions if p != "float32"]]:
        previous = job.read_result(precision)
        if previous is not None:  # made by an earlier child, or failed when it died
            conversion.adopt(precision, previous)
            continue
        status.send(begin=precision, step="converting")
        _inject_fault(precision)
        started = time.perf_counter()
        try:
            result, data, outputs = conversion.make(precision)
        except EdgeoptError as exc:
            conversion.failed(precision, str(exc))
            result, data, outputs = failed_result(precision, " ".join(str(exc).split()),
                                                  stderr_tail=_log_tail()), None, None
        result["seconds"] = round(time.perf_counter() - started, 3)
        job.write_result(precision, result, data, outputs)
        status.send(done=precision)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeopt.convert._worker")
    parser.add_argument("--status-fd", type=int, required=True)
    parser.add_argument("--idle-s", type=float, default=IDLE_S)
    args = parser.parse_args(argv)
    status = _Status(args.status_fd)
    _watch_parent()

    from edgeopt import _quiet

    # Everything native goes straight to this process's stdout/stderr (the parent's log
    # file, or its terminal with --verbose), so a crash leaves its last words there.
    _quiet.set_verbose(True)
    import tensorflow  # noqa: F401  (the slow import, done before the job arrives)

    from edgeopt.convert.job import Job

    status.send(ready=True)
    while True:  # one job per export; an idle child is kept for the parent's next export
        path = _next_job(args.idle_s)
        if path is None:
            return 0
        if path:
            _run_job(Job.load(path), status)
            status.send(finished=path)


if __name__ == "__main__":
    sys.exit(main())
