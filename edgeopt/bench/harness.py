"""`measure_latency` and `benchmark`: models × devices, devices in parallel.

Models run one after another on a device (so they do not compete for its cores);
devices run in parallel. A device that fails does not stop the others: its jobs get
error results, and every completed result is kept. Ctrl-C (KeyboardInterrupt) stops
the command running on every device before it propagates.
"""

from __future__ import annotations

import os
import threading
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from edgeopt.bench.arguments import validate_bench_args
from edgeopt.bench.profiles import DeviceProfile, load_profile
from edgeopt.bench.result import LatencyResult
from edgeopt.bench.session import DeviceSession
from edgeopt.convert.inspect import parse_model, read_model_bytes
from edgeopt.errors import ConfigError, DeviceError

Progress = Callable[[str], None]


def _check_models(models: Sequence[str | os.PathLike]) -> list[str]:
    """Every model is a readable, well-formed .tflite before any device is touched."""
    checked = []
    for model in models:
        path = str(model)
        parse_model(read_model_bytes(path), origin=path)
        checked.append(path)
    if not checked:
        raise ConfigError("No model to benchmark. Received: models=[]. Pass at least one .tflite file.")
    return checked


def measure_latency(model: str | os.PathLike, device: str | DeviceProfile = "local", *, threads: int | None = None,
                    runs: int = 50, warmup: int = 5, min_secs: float = 1.0, max_secs: float = 150.0,
                    keep: bool = False) -> LatencyResult:
    """Measures one .tflite model on one device.

    Example:

    ```python
    result = edgeopt.measure_latency("out/model.int8.tflite", device="rpi4", threads=4)
    print(result.p50_ms, result.peak_rss_mb)
    ```

    Args:
        model: path of the .tflite file.
        device: a profile name (`local`, or a file in `devices/`), a path, or a
            `DeviceProfile`. Defaults to `"local"`.
        threads: inference threads. Defaults to `None` (the profile's, else the runtime's).
        runs: at least this many timed runs. Defaults to `50`.
        warmup: untimed runs first. Defaults to `5`.
        min_secs: keep running until this much time has passed too. Defaults to `1.0`.
        max_secs: stop after this long even if `runs` is not reached. Defaults to `150.0`.
        keep: leave pushed files on the device. Defaults to `False`.

    Raises:
        ConfigError: a bad argument (see `validate_bench_args`), before any device is touched.
        DeviceError: and its subclasses, with the device name and a fix hint.
    """
    validate_bench_args(threads=threads, runs=runs, warmup=warmup, min_secs=min_secs, max_secs=max_secs, keep=keep)
    (path,) = _check_models([model])
    profile = load_profile(device)
    with DeviceSession(profile, keep=keep) as session:
        return session.measure(path, threads=threads, runs=runs, warmup=warmup, min_secs=min_secs, max_secs=max_secs)


def benchmark(models: Sequence[str | os.PathLike], devices: Sequence[str | DeviceProfile] = ("local",), *,
              threads: int | None = None, runs: int = 50, warmup: int = 5, min_secs: float = 1.0,
              max_secs: float = 150.0, keep: bool = False, progress: Progress | None = None) -> list[LatencyResult]:
    """Measures every model on every device; failures become error results.

    Returns:
        One `LatencyResult` per (device, model), in device-then-model order.
    """
    say = progress or (lambda line: None)
    validate_bench_args(threads=threads, runs=runs, warmup=warmup, min_secs=min_secs, max_secs=max_secs, keep=keep)
    paths = _check_models(models)
    profiles = [load_profile(d) for d in devices]  # an unknown profile fails before any work
    if len({p.name for p in profiles}) != len(profiles):
        raise ConfigError(f"A device is listed twice. Received: {[p.name for p in profiles]}. List each once.")

    cancel = threading.Event()

    def on_device(profile: DeviceProfile) -> list[LatencyResult]:
        results: list[LatencyResult] = []
        try:
            with DeviceSession(profile, keep=keep, cancel=cancel) as session:
                for index, path in enumerate(paths, 1):
                    say(f"[{profile.name}] {index}/{len(paths)} {Path(path).name}: measuring")
                    try:
                        result = session.measure(path, threads=threads, runs=runs, warmup=warmup,
                                                 min_secs=min_secs, max_secs=max_secs)
                        p50 = result.p50_ms if result.p50_ms is not None else result.mean_ms
                        say(f"[{profile.name}] {index}/{len(paths)} {Path(path).name}: p50 {p50:.3f} ms "
                            f"({result.runs} runs)")
                    except DeviceError as exc:
                        result = _error(profile, path, exc)
                        say(f"{index}/{len(paths)} {Path(path).name}: ERROR {exc}")
                    results.append(result)
        except DeviceError as exc:  # the session itself failed: every remaining job gets the error
            say(f"ERROR {exc}")
            results += [_error(profile, path, exc) for path in paths[len(results):]]
        except Exception as exc:  # a bug in edgeopt: this device's jobs fail, the others' results stay
            warnings.warn(f"Internal error on device {profile.name!r} (please report it):\n{traceback.format_exc()}",
                          RuntimeWarning, stacklevel=1)
            say(f"ERROR [{profile.name}] internal error: {type(exc).__name__}: {exc}")
            results += [_error(profile, path, exc) for path in paths[len(results):]]
        return results

    pool = ThreadPoolExecutor(max_workers=len(profiles))
    try:
        futures = [pool.submit(on_device, profile) for profile in profiles]
        per_device = [future.result() for future in futures]
    except BaseException:  # Ctrl-C: stop what runs on every device, then let it propagate
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True)
    return [result for results in per_device for result in results]


def _error(profile: DeviceProfile, path: str, exc: Exception) -> LatencyResult:
    message = str(exc) if isinstance(exc, DeviceError) else f"[{profile.name}] internal error (a bug): {exc}"
    return LatencyResult(device=profile.name, model=path, status="error", error=message[:2000],
                         error_type=type(exc).__name__, transport=str(profile.transport), runner=str(profile.runner))
