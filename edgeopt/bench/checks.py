"""`edgeopt devices check`: can this device run a benchmark, and in what state is it?"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from edgeopt.bench.profiles import DeviceProfile, RunnerKind, load_profile
from edgeopt.bench.session import DeviceSession
from edgeopt.errors import DeviceError


@dataclass
class Check:
    """One check: its name, whether it passed, what was found, and how to fix a failure."""

    name: str
    ok: bool
    detail: str
    hint: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def check_device(device: str | DeviceProfile) -> list[Check]:
    """Runs the checks in order; a failed check skips the ones that depend on it."""
    profile = load_profile(device)
    session = DeviceSession(profile)
    checks: list[Check] = []
    try:
        _run_checks(session, profile, checks)
    finally:
        session.cleanup()
    return checks


def _run_checks(session: DeviceSession, profile: DeviceProfile, checks: list[Check]) -> None:
    try:
        session.transport.run(["true"], timeout_s=profile.connect_timeout_s + 20)
        checks.append(Check("reachable", True, f"{profile.transport} to {_where(profile)}"))
    except DeviceError as exc:
        checks.append(Check("reachable", False, exc.message, exc.hint))
        return
    try:
        workdir = session.prepare()
        checks.append(Check("workdir writable", True, workdir))
    except DeviceError as exc:
        checks.append(Check("workdir writable", False, exc.message, exc.hint))
        return
    try:
        checks.append(_runtime_check(session, profile))
        facts = session.device_facts()
        checks.append(Check("cpu", bool(facts["cpu_model"]), f"{facts['cpu_model'] or 'unknown'} ({facts['machine']})"))
        governor = facts["governor"]
        checks.append(Check("governor", governor in (None, "performance"), f"{governor or 'not exposed'}"
                            + (f" at {facts['cpu_freq_khz'] / 1000:.0f} MHz" if facts["cpu_freq_khz"] else ""),
                            None if governor in (None, "performance") else
                            "For stable numbers pin the clock: echo performance | sudo tee "
                            "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"))
        temp = facts["temperature_after_c"]
        checks.append(Check("temperature", temp is None or temp < 70, "not exposed" if temp is None else f"{temp:.1f} °C",
                            None if temp is None or temp < 70 else "Let the device cool down or add a heatsink/fan."))
    except DeviceError as exc:
        checks.append(Check("device", False, exc.message, exc.hint))


def _runtime_check(session: DeviceSession, profile: DeviceProfile) -> Check:
    if profile.runner is RunnerKind.BENCHMARK_MODEL:
        local = os.path.expanduser(profile.benchmark_model)
        if os.path.isfile(local):
            remote = session.benchmark_model_path()
            return Check("runtime", True, f"benchmark_model pushed from {local} to {remote}")
        completed = session.transport.run(["test", "-x", session.benchmark_model_path()], check=False)
        if completed.returncode == 0:
            return Check("runtime", True, f"benchmark_model at {profile.benchmark_model}")
        return Check("runtime", False, f"benchmark_model not found: {profile.benchmark_model}",
                     "Download TFLite's benchmark_model for the device's CPU and set `benchmark_model:` to its path.")
    facts = session.probe()
    if facts.get("error") == "runtime_missing":
        return Check("runtime", False, f"no LiteRT runtime for {profile.remote_python} ({facts.get('message')})",
                     "On the device: pip install numpy ai-edge-litert (or 'numpy<2' tflite-runtime on 32-bit ARM).")
    return Check("runtime", True, f"{facts['runtime']} {facts.get('runtime_version') or ''}, numpy "
                 f"{facts.get('numpy_version')}, Python {facts.get('python')}".replace("  ", " "))


def _where(profile: DeviceProfile) -> str:
    if profile.host:
        return profile.host + (f":{profile.port}" if profile.port else "")
    if profile.serial:
        return profile.serial
    return "this machine" if str(profile.transport) == "local" else "the attached device"
