"""A working session on one device: its scratch directory, pushed files, one runner call.

Files are pushed under content-addressed names (`<sha256[:16]>.tflite`), once per model
(skipped when the device already holds the same bytes); user file names never reach a
remote shell. On exit the session removes what it pushed unless `keep=True`.

The workdir is private to the device user: created with mode 0700, and refused when
another user owns it or may write to it — they could swap the runner between its hash
check and its execution. Without `workdir:` an ssh device uses
`${XDG_CACHE_HOME:-$HOME/.cache}/edgeopt`, adb `/data/local/tmp/edgeopt` (adb shell is a
single user), and the local machine a new temp dir.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

from edgeopt._files import sha256_file
from edgeopt.bench import runner as runner_script
from edgeopt.bench.benchmark_model import BenchmarkOutputError, parse_benchmark_output
from edgeopt.bench.profiles import DeviceProfile, RunnerKind, TransportKind
from edgeopt.bench.result import LatencyResult
from edgeopt.bench.transports import HomePath, make_transport
from edgeopt.errors import DeviceError, RemoteCommandError

RUNNER_PATH = Path(runner_script.__file__)
# $1: the workdir, or "" for the per-user default. Exit 3: not private to this user.
_PREPARE = r"""umask 077
d=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeopt}
mkdir -p "$d" && cd "$d" || exit 1
set -- $(ls -ldn .)
case $1 in
  ?????w*|????????w*) echo "edgeopt: $PWD is writable by other users ($1)" >&2; exit 3 ;;
esac
if [ "$3" != "$(id -u)" ]; then echo "edgeopt: $PWD belongs to uid $3, not to uid $(id -u)" >&2; exit 3; fi
touch .edgeopt-write-test && rm -f .edgeopt-write-test && pwd"""
_INSTALL_HINT = ("Install a runtime on the device: `pip install numpy ai-edge-litert` "
                 "(or `pip install 'numpy<2' tflite-runtime` on 32-bit ARM), or set `python:` in the profile.")


class DeviceSession:
    """Prepares a device's workdir, pushes files and runs measurements on it.

    Args:
        profile: the device profile.
        keep: leave pushed files on the device. Defaults to `False`.
        cancel: an event that stops the running command (on the device too) when set.
            Defaults to `None`.
    """

    def __init__(self, profile: DeviceProfile, *, keep: bool = False, cancel: threading.Event | None = None):
        self.profile = profile
        self.keep = keep
        self.transport = make_transport(profile, cancel=cancel)
        self.workdir: str | None = None
        self._pushed: dict[str, str] = {}  # sha256 -> remote path
        self._local_tmp: str | None = None

    @property
    def device(self) -> str:
        return self.profile.name

    def __enter__(self) -> "DeviceSession":
        try:
            self.prepare()
        except BaseException:
            self.transport.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def prepare(self) -> str:
        """Creates the private workdir, proves it writable and returns its absolute path."""
        workdir = self.profile.remote_workdir
        if self.profile.transport is TransportKind.LOCAL and not workdir:
            workdir = self._local_tmp = tempfile.mkdtemp(prefix="edgeopt-bench-")
        try:
            completed = self.transport.run(["sh", "-c", _PREPARE, "sh", HomePath(workdir)],
                                           timeout_s=self.profile.connect_timeout_s + 30)
        except RemoteCommandError as exc:
            shown = workdir or "${XDG_CACHE_HOME:-$HOME/.cache}/edgeopt"
            if exc.exit_code == 3:
                raise DeviceError(
                    f"The device workdir is not private to the device user. Received: workdir={shown!r} "
                    f"({exc.stderr_tail.removeprefix('edgeopt: ')}).",
                    hint="Another user could swap the runner there; set `workdir:` to a directory only you can "
                         "write (or leave it unset).",
                    device=self.device) from None
            raise DeviceError(
                f"The device workdir is not writable. Received: workdir={shown!r} ({exc.stderr_tail or exc}).",
                hint="Set `workdir:` in the profile to a directory you can write (or leave it unset).",
                device=self.device) from None
        lines = completed.stdout.strip().splitlines()
        if not lines or not lines[-1].startswith("/"):
            raise DeviceError(f"The device did not report its workdir. Received: {completed.stdout[-200:]!r}.",
                              hint="Check that the device user's shell is a POSIX sh.", device=self.device)
        self.workdir = lines[-1]
        return self.workdir

    def push(self, local: str | os.PathLike, suffix: str | None = None) -> str:
        """Pushes a file once (by content) and returns its path on the device."""
        local = str(local)
        digest = sha256_file(local)
        if digest in self._pushed:
            return self._pushed[digest]
        remote = f"{self.workdir}/{digest[:16]}{suffix if suffix is not None else Path(local).suffix}"
        if self._remote_sha256(remote) != digest:
            self.transport.push(local, remote)
        self._pushed[digest] = remote
        return remote

    def _remote_sha256(self, remote: str) -> str | None:
        completed = self.transport.run(["sh", "-c", 'sha256sum "$1" 2>/dev/null || true', "sh", remote], check=False)
        words = completed.stdout.split()
        return words[0] if words and len(words[0]) == 64 else None

    def cleanup(self) -> None:
        """Removes pushed files (unless `keep`) and closes the transport."""
        try:
            if not self.keep and self.workdir is not None:
                paths = list(self._pushed.values())
                if paths:  # cleanup runs after a Ctrl-C too: not cancellable
                    self.transport.run(["rm", "-f", *paths], check=False, timeout_s=60, cancellable=False)
                self.transport.run(["rmdir", self.workdir], check=False, timeout_s=60,  # only if empty
                                   cancellable=False)
                self._pushed.clear()
        except DeviceError:
            pass  # the device went away; nothing more to clean
        finally:
            self.transport.close()

    def _prefix(self) -> list[str]:
        return ["taskset", self.profile.cpu_mask] if self.profile.cpu_mask else []

    def probe(self) -> dict:
        """Runtime name/version and device facts from the Python runner (`--probe`)."""
        runner = self.push(RUNNER_PATH, ".py")
        completed = self.transport.run([HomePath(self.profile.remote_python), runner, "--probe"], check=False)
        facts = self._runner_json(completed, allow_codes=(0, runner_script.EXIT_RUNTIME_MISSING))
        if facts.get("error") != "runtime_missing" and not isinstance(facts.get("runtime"), str):
            raise RemoteCommandError(f"The runner's probe names no runtime. Received: {str(facts)[:200]!r}.",
                                     hint="Check that the profile's `python` runs edgeopt's runner unchanged.",
                                     device=self.device, command=completed.argv, exit_code=completed.returncode)
        return {k: (v[:200] if isinstance(v, str) else v) for k, v in facts.items()}

    def measure(self, model: str | os.PathLike, *, threads: int | None = None, runs: int = 50, warmup: int = 5,
                min_secs: float = 1.0, max_secs: float = 150.0) -> LatencyResult:
        """Measures one model on this device. Raises `DeviceError` subclasses on failure."""
        started = time.perf_counter()
        threads = threads if threads is not None else self.profile.threads
        remote_model = self.push(model, ".tflite")
        if self.profile.runner is RunnerKind.BENCHMARK_MODEL:
            fields = self._benchmark_model(remote_model, threads, runs, warmup, min_secs, max_secs)
        else:
            fields = self._python_runner(remote_model, threads, runs, warmup, min_secs, max_secs)
        try:
            return LatencyResult.from_fields(
                self.device, str(model), fields, model_sha256=sha256_file(model),
                transport=str(self.profile.transport), seconds=round(time.perf_counter() - started, 3))
        except ValueError as exc:  # odd output: strings for numbers, NaN, no latency at all
            raise RemoteCommandError(
                f"The {self.profile.runner} runner's output is not a valid result: {exc}.",
                hint="Check that the device runs an unmodified runner/binary; run it by hand to see its output.",
                device=self.device) from None

    def _python_runner(self, remote_model, threads, runs, warmup, min_secs, max_secs) -> dict:
        runner = self.push(RUNNER_PATH, ".py")
        argv = [*self._prefix(), HomePath(self.profile.remote_python), runner, "--model", remote_model, "--runs", str(runs),
                "--warmup", str(warmup), "--min-secs", str(min_secs), "--max-secs", str(max_secs)]
        if threads:
            argv += ["--threads", str(threads)]
        completed = self.transport.run(argv, check=False)
        return self._runner_json(completed)

    def _runner_json(self, completed, allow_codes=(0,)) -> dict:
        data = parse_runner_json(completed.stdout)
        if not isinstance(data, dict):
            if completed.returncode == 127 or "not found" in completed.stderr or "No such file" in completed.stderr:
                raise DeviceError(f"The device has no Python at the profile's path. Received: python="
                                  f"{self.profile.remote_python!r} ({completed.tail(1)}).", hint=_INSTALL_HINT,
                                  device=self.device)
            raise RemoteCommandError(
                f"The runner printed no valid JSON (exit code {completed.returncode}). "
                f"Received: {(completed.stdout.strip() or completed.stderr.strip())[-200:]!r}.",
                hint="Check that the profile's `python` is a Python 3 interpreter.",
                device=self.device, command=completed.argv, exit_code=completed.returncode,
                stderr_tail=completed.tail())
        if data.get("error") == "runtime_missing" and completed.returncode not in allow_codes:
            raise DeviceError(f"No LiteRT runtime on the device. Received: {str(data.get('message'))[:300]}.",
                              hint=_INSTALL_HINT, device=self.device)
        if data.get("error") == "model_refused":
            raise RemoteCommandError(
                f"The runtime on the device refused the model. Received: {str(data.get('message', ''))[:300]}.",
                hint="Check the model's ops are supported by that runtime version (edgeopt inspect lists them).",
                device=self.device, command=completed.argv, exit_code=completed.returncode)
        if completed.returncode not in allow_codes:
            raise RemoteCommandError(
                f"The runner failed with exit code {completed.returncode}. Received: {completed.tail()}.",
                device=self.device, command=completed.argv, exit_code=completed.returncode,
                stderr_tail=completed.tail())
        return data

    def benchmark_model_path(self) -> str:
        """The binary on the device: pushed when the profile's path is a local file."""
        binary = os.path.expanduser(self.profile.benchmark_model)
        if os.path.isfile(binary):
            remote = self.push(binary, "")
            self.transport.run(["chmod", "+x", remote])
            return remote
        return HomePath(self.profile.benchmark_model)

    def _benchmark_model(self, remote_model, threads, runs, warmup, min_secs, max_secs) -> dict:
        binary = self.benchmark_model_path()
        argv = [*self._prefix(), binary, f"--graph={remote_model}", f"--num_runs={runs}", f"--warmup_runs={warmup}",
                f"--min_secs={min_secs}", f"--max_secs={max_secs}", "--use_xnnpack=true",
                *self.profile.benchmark_model_flags]
        if threads:
            argv.append(f"--num_threads={threads}")
        completed = self.transport.run(argv, check=False)
        text = completed.stdout + "\n" + completed.stderr
        if completed.returncode != 0:
            raise RemoteCommandError(
                f"benchmark_model failed with exit code {completed.returncode}. Received: {completed.tail()}.",
                hint="Check the binary matches the device (arm64 vs armv7) and supports the model's ops.",
                device=self.device, command=argv, exit_code=completed.returncode, stderr_tail=completed.tail())
        try:
            fields = parse_benchmark_output(text)
        except BenchmarkOutputError:
            raise RemoteCommandError(
                f"benchmark_model printed no timings. Received: {text.strip()[-200:]!r}.",
                hint="Run it by hand on the device with --graph to see why.",
                device=self.device, command=argv, exit_code=completed.returncode) from None
        fields.setdefault("threads", threads)
        fields.update(runner="benchmark_model", runtime="benchmark_model")
        fields.update(self.device_facts())
        return fields

    def device_facts(self) -> dict:
        """CPU model, governor, frequency and temperature from the device's /proc and /sys.

        Read with `cat` (a benchmark_model device may have no Python), parsed by the
        runner's own `parse_facts`, so both runners report the same facts.
        """
        files = [runner_script.CPUINFO_FILE, *(path for _, path in runner_script.FACT_FILES)]
        script = "".join(f'cat {path} 2>/dev/null; echo "@@"; ' for path in files) + "uname -m"
        completed = self.transport.run(["sh", "-c", script], check=False, timeout_s=30)
        cpuinfo, governor, freq, temp, machine = (completed.stdout.split("@@") + [""] * 5)[:5]
        model = runner_script.cpu_model(cpuinfo.strip()[:1 << 16]) if cpuinfo.strip() else None
        facts = runner_script.parse_facts(model, machine, governor, freq, temp)
        facts["temperature_after_c"] = facts.pop("temperature_c")
        return facts


def parse_runner_json(stdout: str) -> dict | None:
    """The runner's JSON object: its last stdout line starting with `{`, or `None` when
    that line is not a JSON object (malformed, nested too deep, an int of 5,000 digits)."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        return None
    try:
        data = json.loads(lines[-1])
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return None
    return data if isinstance(data, dict) else None
