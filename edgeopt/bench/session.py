"""A working session on one device: its scratch directory, pushed files, one runner call.

Files are pushed under content-addressed names (`<sha256[:16]>.tflite`), once per model
(skipped when the device already holds the same bytes); user file names never reach a
remote shell. On exit the session removes what it pushed unless `keep=True`.
"""

from __future__ import annotations

import json
import os
import tempfile
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
_PREPARE = 'mkdir -p "$1" && cd "$1" && touch .edgeopt-write-test && rm -f .edgeopt-write-test && pwd'
_INSTALL_HINT = ("Install a runtime on the device: `pip install numpy ai-edge-litert` "
                 "(or `pip install 'numpy<2' tflite-runtime` on 32-bit ARM), or set `python:` in the profile.")


class DeviceSession:
    """Prepares a device's workdir, pushes files and runs measurements on it.

    Args:
        profile: the device profile.
        keep: leave pushed files on the device. Defaults to `False`.
    """

    def __init__(self, profile: DeviceProfile, *, keep: bool = False):
        self.profile = profile
        self.keep = keep
        self.transport = make_transport(profile)
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
        """Creates the workdir, proves it writable and returns its absolute path."""
        workdir = self.profile.remote_workdir
        if self.profile.transport is TransportKind.LOCAL and not workdir:
            workdir = self._local_tmp = tempfile.mkdtemp(prefix="edgeopt-bench-")
        try:
            completed = self.transport.run(["sh", "-c", _PREPARE, "sh", HomePath(workdir)], timeout_s=self.profile.connect_timeout_s + 30)
        except RemoteCommandError as exc:
            raise DeviceError(
                f"The device workdir is not writable. Received: workdir={workdir!r} ({exc.stderr_tail or exc}). "
                "Set `workdir:` in the profile to a directory you can write (e.g. /tmp/edgeopt).",
                device=self.device) from None
        self.workdir = completed.stdout.strip().splitlines()[-1]
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
                if paths:
                    self.transport.run(["rm", "-f", *paths], check=False, timeout_s=60)
                self.transport.run(["rmdir", self.workdir], check=False, timeout_s=60)  # only if empty
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
        return self._runner_json(completed, allow_codes=(0, runner_script.EXIT_RUNTIME_MISSING))

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
        return LatencyResult.from_fields(
            self.device, str(model), fields, model_sha256=sha256_file(model), transport=str(self.profile.transport),
            seconds=round(time.perf_counter() - started, 3))

    def _python_runner(self, remote_model, threads, runs, warmup, min_secs, max_secs) -> dict:
        runner = self.push(RUNNER_PATH, ".py")
        argv = [*self._prefix(), HomePath(self.profile.remote_python), runner, "--model", remote_model, "--runs", str(runs),
                "--warmup", str(warmup), "--min-secs", str(min_secs), "--max-secs", str(max_secs)]
        if threads:
            argv += ["--threads", str(threads)]
        completed = self.transport.run(argv, check=False)
        return self._runner_json(completed)

    def _runner_json(self, completed, allow_codes=(0,)) -> dict:
        lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        try:
            data = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            if completed.returncode == 127 or "not found" in completed.stderr or "No such file" in completed.stderr:
                raise DeviceError(f"The device has no Python at the profile's path. Received: python="
                                  f"{self.profile.remote_python!r} ({completed.tail(1)}). {_INSTALL_HINT}",
                                  device=self.device)
            raise RemoteCommandError(
                f"The runner printed no valid JSON (exit code {completed.returncode}). "
                f"Received: {(completed.stdout.strip() or completed.stderr.strip())[-200:]!r}. "
                "Check that the profile's `python` is a Python 3 interpreter.",
                device=self.device, command=completed.argv, exit_code=completed.returncode,
                stderr_tail=completed.tail())
        if data.get("error") == "runtime_missing" and completed.returncode not in allow_codes:
            raise DeviceError(f"No LiteRT runtime on the device. Received: {data.get('message')}. {_INSTALL_HINT}",
                              device=self.device)
        if data.get("error") == "model_refused":
            raise RemoteCommandError(
                f"The runtime on the device refused the model. Received: {data.get('message', '')[:300]}. "
                "Check the model's ops are supported by that runtime version (edgeopt inspect lists them).",
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
                f"benchmark_model failed with exit code {completed.returncode}. Received: {completed.tail()}. "
                "Check the binary matches the device (arm64 vs armv7) and supports the model's ops.",
                device=self.device, command=argv, exit_code=completed.returncode, stderr_tail=completed.tail())
        try:
            fields = parse_benchmark_output(text)
        except BenchmarkOutputError:
            raise RemoteCommandError(
                f"benchmark_model printed no timings. Received: {text.strip()[-200:]!r}. "
                "Run it by hand on the device with --graph to see why.",
                device=self.device, command=argv, exit_code=completed.returncode) from None
        fields.setdefault("threads", threads)
        fields.update(runner="benchmark_model", runtime="benchmark_model")
        fields.update(self.device_facts())
        return fields

    def device_facts(self) -> dict:
        """CPU model, governor, frequency and temperature from the device's /proc and /sys."""
        script = ('cat /proc/cpuinfo 2>/dev/null; echo "@@"; '
                  'cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null; echo "@@"; '
                  'cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq 2>/dev/null; echo "@@"; '
                  'cat /sys/class/thermal/thermal_zone0/temp 2>/dev/null; echo "@@"; uname -m')
        completed = self.transport.run(["sh", "-c", script], check=False, timeout_s=30)
        parts = (completed.stdout.split("@@") + [""] * 5)[:5]
        cpuinfo, governor, freq, temp, machine = (p.strip() for p in parts)
        try:
            temperature = float(temp) / (1000.0 if float(temp) > 1000 else 1.0)
        except ValueError:
            temperature = None
        return {"cpu_model": runner_script.cpu_model(cpuinfo) if cpuinfo else None, "governor": governor or None,
                "cpu_freq_khz": int(freq) if freq.isdigit() else None, "temperature_after_c": temperature,
                "machine": machine or None}
