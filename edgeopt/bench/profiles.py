"""Device profiles: YAML data describing how to reach a device and run the benchmark.

Profiles hold no secrets: ssh uses the user's `~/.ssh/config` aliases, agent and keys;
adb uses its own pairing. A profile loads by name from the profile directories
(`./devices/`, `$EDGEOPT_DEVICES`, edgeopt's own `devices/`) or by path.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeopt._compat import StrEnum
from edgeopt._yaml import read_yaml
from edgeopt.errors import ConfigError


class TransportKind(StrEnum):
    LOCAL = "local"
    SSH = "ssh"
    ADB = "adb"


class RunnerKind(StrEnum):
    PYTHON = "python"  # edgeopt's runner script with ai_edge_litert / tflite_runtime
    BENCHMARK_MODEL = "benchmark_model"  # TFLite's C++ benchmark_model binary


class HostKeyChecking(StrEnum):
    YES = "yes"  # the default: unknown hosts are refused
    ACCEPT_NEW = "accept-new"
    NO = "no"


@dataclass
class DeviceProfile:
    """How to reach one device and run latency measurements on it.

    Args:
        name: profile name. Defaults to the file stem.
        transport: `local`, `ssh` or `adb`. Defaults to `local`.
        description: free text. Defaults to `""`.
        host: ssh destination: an `~/.ssh/config` alias or `user@host`. Defaults to `None`.
        port: ssh port. Defaults to `None` (ssh's own default or config).
        identity_file: ssh key path (not the key). Defaults to `None` (agent/config).
        known_hosts_file: ssh known_hosts to use instead of the user's. Defaults to `None`.
        strict_host_key_checking: `yes`, `accept-new` or `no`. Defaults to `yes`.
        connect_timeout_s: ssh/adb connect timeout. Defaults to `10`.
        serial: adb device serial (`adb -s`). Defaults to `None`.
        adb: adb executable. Defaults to `"adb"`.
        workdir: remote scratch directory. Defaults to `None` (a temp dir locally,
            `/tmp/edgeopt` over ssh, `/data/local/tmp/edgeopt` over adb).
        python: remote Python for the python runner. Defaults to `"python3"`
            (the current interpreter for `local`).
        runner: `python` or `benchmark_model`. Defaults to `python`.
        benchmark_model: path of the binary: a local file to push, or on the device.
            Defaults to `None`.
        benchmark_model_flags: extra flags passed through, e.g. `["--use_gpu=true"]`.
            Defaults to `[]`.
        threads: inference threads. Defaults to `None` (runtime default).
        cpu_mask: hex mask for `taskset` (e.g. `f0` for big cores). Defaults to `None`.
        env: environment variables for the remote command. Defaults to `{}`.
        timeout_s: limit for one remote command. Defaults to `300`.
    """

    name: str = "local"
    transport: TransportKind = TransportKind.LOCAL
    description: str = ""
    host: str | None = None
    port: int | None = None
    identity_file: str | None = None
    known_hosts_file: str | None = None
    strict_host_key_checking: HostKeyChecking = HostKeyChecking.YES
    connect_timeout_s: float = 10.0
    serial: str | None = None
    adb: str = "adb"
    workdir: str | None = None
    python: str | None = None
    runner: RunnerKind = RunnerKind.PYTHON
    benchmark_model: str | None = None
    benchmark_model_flags: list[str] = field(default_factory=list)
    threads: int | None = None
    cpu_mask: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 300.0
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        where = f" in {self.source}" if self.source else ""
        for key, enum in (("transport", TransportKind), ("runner", RunnerKind),
                          ("strict_host_key_checking", HostKeyChecking)):
            value = getattr(self, key)
            if isinstance(value, bool):  # YAML reads bare yes/no as booleans
                value = "yes" if value else "no"
            try:
                setattr(self, key, enum(str(value)))
            except ValueError:
                raise ConfigError(
                    f"Bad value for '{key}'{where}. Received: {key}={value!r}. "
                    f"Use one of: {', '.join(e.value for e in enum)}."
                ) from None
        if self.transport is TransportKind.SSH and not self.host:
            raise ConfigError(f"An ssh profile needs 'host'{where}. Received: host=None. "
                              "Set host to an ~/.ssh/config alias or user@host.")
        for key in ("port", "threads"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"'{key}' must be a positive integer{where}. Received: {key}={value!r}.")
        for key in ("timeout_s", "connect_timeout_s"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"'{key}' must be a positive number of seconds{where}. Received: {key}={value!r}.")
        if self.runner is RunnerKind.BENCHMARK_MODEL and not self.benchmark_model:
            raise ConfigError(f"runner: benchmark_model needs 'benchmark_model' (the binary's path){where}. "
                              "Received: benchmark_model=None. Point it at a local binary to push, or one on the device.")
        if self.cpu_mask is not None:
            self.cpu_mask = str(self.cpu_mask)
            try:
                int(self.cpu_mask, 16)
            except ValueError:
                raise ConfigError(f"'cpu_mask' must be a hex mask like f0{where}. Received: cpu_mask={self.cpu_mask!r}.") from None
        if not isinstance(self.env, dict) or not isinstance(self.benchmark_model_flags, list):
            raise ConfigError(f"'env' must be a mapping and 'benchmark_model_flags' a list{where}. "
                              f"Received: env={self.env!r}, benchmark_model_flags={self.benchmark_model_flags!r}.")
        self.env = {str(k): str(v) for k, v in self.env.items()}

    @property
    def remote_workdir(self) -> str:
        if self.workdir:
            return self.workdir
        return {TransportKind.ADB: "/data/local/tmp/edgeopt", TransportKind.SSH: "/tmp/edgeopt"}.get(self.transport, "")

    @property
    def remote_python(self) -> str:
        if self.python:
            return self.python
        return sys.executable if self.transport is TransportKind.LOCAL else "python3"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source")
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in data.items()}


LOCAL = DeviceProfile(name="local", description="this machine, through the Python runner")
_FIELDS = {f.name for f in dataclasses.fields(DeviceProfile)} - {"source"}


def profile_dirs() -> list[Path]:
    """Where profiles are looked up by name, first match wins."""
    dirs = [Path.cwd() / "devices"]
    dirs += [Path(p) for p in os.environ.get("EDGEOPT_DEVICES", "").split(os.pathsep) if p]
    bundled = Path(__file__).resolve().parents[2] / "devices"
    if bundled.is_dir():
        dirs.append(bundled)
    return dirs


def _read_yaml(path: Path) -> dict:
    data = read_yaml(path, "Device profile")
    if not isinstance(data, dict):
        raise ConfigError(f"A device profile must be a YAML mapping. Received: {type(data).__name__} in {str(path)!r}.")
    return data


def profile_from_dict(data: dict, *, name: str, source: str | None = None) -> DeviceProfile:
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ConfigError(
            f"Unknown key{'s' if len(unknown) > 1 else ''} in device profile {source or name!r}. "
            f"Received: {', '.join(unknown)}. Known keys: {', '.join(sorted(_FIELDS))}."
        )
    values = dict(data)
    values.setdefault("name", name)
    return DeviceProfile(**values, source=source)


def load_profile(name_or_path: str | os.PathLike | DeviceProfile) -> DeviceProfile:
    """A profile by name (searched in `profile_dirs()`), by YAML path, or as given."""
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or os.sep in text:
        if not path.is_file():
            raise ConfigError(f"Device profile file not found. Received: {text!r}. Check the path.")
        return profile_from_dict(_read_yaml(path), name=path.stem, source=str(path))
    for directory in profile_dirs():
        for suffix in (".yaml", ".yml"):
            candidate = directory / f"{text}{suffix}"
            if candidate.is_file():
                return profile_from_dict(_read_yaml(candidate), name=text, source=str(candidate))
    if text == "local":
        return LOCAL
    known = ", ".join(sorted({p.stem for d in profile_dirs() if d.is_dir() for p in d.glob("*.y*ml")} | {"local"}))
    raise ConfigError(f"No such device profile. Received: {text!r}. Known profiles: {known}; "
                      "or pass a path to a .yaml profile.")


def list_profiles() -> list[DeviceProfile]:
    """Every profile found in `profile_dirs()` (first of each name), plus the built-in `local`."""
    found: dict[str, DeviceProfile] = {}
    for directory in profile_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.y*ml")):
                if path.stem not in found:
                    found[path.stem] = profile_from_dict(_read_yaml(path), name=path.stem, source=str(path))
    found.setdefault("local", LOCAL)
    return sorted(found.values(), key=lambda p: p.name)
