"""Device profiles: YAML data describing how to reach a device and run the benchmark.

Profiles hold no secrets: ssh uses the user's `~/.ssh/config` aliases, agent and keys;
adb uses its own pairing. A profile loads by name from the profile directories
(`./devices/`, `$EDGEOPT_DEVICES`, edgeopt's own `devices/`) or by path.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeopt._compat import StrEnum
from edgeopt._yaml import read_yaml
from edgeopt.errors import ConfigError


ADB_WORKDIR = "/data/local/tmp/edgeopt"
MAX_TIMEOUT_S = 7 * 24 * 3600
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CPU_MASK = re.compile(r"(?:0[xX])?[0-9a-fA-F]{1,64}(?:,[0-9a-fA-F]{1,64}){0,63}")
# Fields that each become one argv element on this machine or the device: never an
# option (no leading '-'), never more than one line.
_WORDS = ("host", "serial", "adb", "python", "benchmark_model", "identity_file", "known_hosts_file", "workdir")
_FIXES = {"host": "Use an ~/.ssh/config alias or user@host.", "serial": "Use a serial that `adb devices` lists."}


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
        workdir: scratch directory on the device, absolute or `~/...`. Defaults to `None`:
            a new private temp dir locally, `${XDG_CACHE_HOME:-~/.cache}/edgeopt` over
            ssh, `/data/local/tmp/edgeopt` over adb. It is created with mode 0700, and a
            workdir another user owns or can write to is refused: they could swap the
            runner between its hash check and its execution.
        python: remote Python for the python runner. Defaults to `"python3"`
            (the current interpreter for `local`).
        runner: `python` or `benchmark_model`. Defaults to `python`.
        benchmark_model: path of the binary: a local file to push, or on the device.
            Defaults to `None`.
        benchmark_model_flags: extra flags passed through, e.g. `["--use_gpu=true"]`.
            Defaults to `[]`.
        threads: inference threads. Defaults to `None` (runtime default).
        cpu_mask: hex mask for `taskset` (e.g. `"f0"` for big cores). Defaults to `None`.
        env: environment variables for the remote command, `NAME: "value"` with NAME an
            identifier. Defaults to `{}`.
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
            if not isinstance(value, str) or value not in {e.value for e in enum}:
                raise ConfigError(
                    f"Bad value for '{key}'{where}. Received: {key}={_shown(value)}. "
                    f"Use one of: {', '.join(e.value for e in enum)}."
                )
            setattr(self, key, enum(value))
        _check_fields(self, where)
        if self.transport is TransportKind.SSH and not self.host:
            raise ConfigError(f"An ssh profile needs 'host'{where}. Received: host=None. "
                              "Set host to an ~/.ssh/config alias or user@host.")
        if self.runner is RunnerKind.BENCHMARK_MODEL and not self.benchmark_model:
            raise ConfigError(f"runner: benchmark_model needs 'benchmark_model' (the binary's path){where}. "
                              "Received: benchmark_model=None. Point it at a local binary to push, or one on the device.")

    @property
    def remote_workdir(self) -> str:
        """The profile's workdir, else the transport's default; `""` means "decided on the
        device" (ssh: `${XDG_CACHE_HOME:-$HOME/.cache}/edgeopt`) or "a new private temp
        dir" (local). Either way the directory is created with mode 0700 and refused if
        another user owns it or can write to it (see `DeviceSession.prepare`)."""
        if self.workdir:
            return self.workdir
        # adb shell is one user (`shell`) and apps cannot write /data/local/tmp: no other
        # local user can swap the runner there, so the documented location is fine.
        return ADB_WORKDIR if self.transport is TransportKind.ADB else ""

    @property
    def remote_python(self) -> str:
        if self.python:
            return self.python
        return sys.executable if self.transport is TransportKind.LOCAL else "python3"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source")
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in data.items()}


def _shown(value: Any) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int of 5,000 digits, a list nested 100k deep
        return f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def validate_env(env: Any, where: str = "") -> dict[str, str]:
    """`env:` as `{NAME: "value"}`: names are shell identifiers, values strings.

    This is the one check between a profile's `env:` and the `env -- NAME=value ...`
    argv that every transport runs (see `transports.base.with_env`): a name like
    `--split-string` would otherwise be read by `env` as an option and run a command.

    Raises:
        ConfigError: a name is not an identifier, or a value is not a string or number.
    """
    if not isinstance(env, dict):
        raise ConfigError(f"'env' must be a mapping of NAME: value{where}. Received: env={_shown(env)}.")
    checked = {}
    for key, value in env.items():
        if not isinstance(key, str) or not _IDENTIFIER.fullmatch(key):
            raise ConfigError(f"Bad environment variable name in 'env'{where}. Received: {_shown(key)}. "
                              "Names must match [A-Za-z_][A-Za-z0-9_]* (e.g. OMP_NUM_THREADS).")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(f"'env' values must be strings{where}. Received: {key}={_shown(value)}. "
                              f"Quote the value in YAML, e.g. {key}: \"1\".")
        value = str(value)
        if "\x00" in value:
            raise ConfigError(f"'env' values cannot contain NUL characters{where}. Received: {key}={_shown(value)}.")
        checked[key] = value
    return checked


def _check_fields(p: DeviceProfile, where: str) -> None:
    """Types and shapes of every field that reaches an argv, a message or a file name."""

    def fail(key: str, why: str, fix: str = "") -> None:
        raise ConfigError(f"'{key}' {why}{where}. Received: {key}={_shown(getattr(p, key))}." + (f" {fix}" if fix else ""))

    for key in ("name", "description"):
        if not isinstance(getattr(p, key), str):
            fail(key, "must be a string")
    if not p.name.strip() or not p.name.isprintable():
        fail("name", "must be a non-empty, single-line string")
    for key in _WORDS:
        value = getattr(p, key)
        if value is None and key != "adb":
            continue
        if not isinstance(value, str) or not value.strip():
            fail(key, "must be a non-empty string")
        if not value.isprintable():
            fail(key, "cannot contain control characters (newline, tab, NUL)")
        if value.startswith("-"):
            fail(key, "cannot start with '-' (it would be read as an option)", _FIXES.get(key, "Give the full path."))
    for key in ("host", "serial"):
        if getattr(p, key) is not None and re.search(r"\s", getattr(p, key)):
            fail(key, "cannot contain spaces", _FIXES[key])
    if p.workdir is not None and not p.workdir.startswith(("/", "~/")):
        fail("workdir", "must be an absolute path on the device (or start with ~/)")
    for key, top in (("port", 65535), ("threads", None)):
        value = getattr(p, key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1
                                  or (top and value > top)):
            fail(key, f"must be a positive integer{f' up to {top}' if top else ''}")
    for key in ("timeout_s", "connect_timeout_s"):
        value = getattr(p, key)
        if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
                or not 0 < value <= MAX_TIMEOUT_S):
            fail(key, f"must be a positive number of seconds up to {MAX_TIMEOUT_S}")
    if p.cpu_mask is not None and (not isinstance(p.cpu_mask, str) or not _CPU_MASK.fullmatch(p.cpu_mask)):
        fail("cpu_mask", "must be a hex mask like f0, as a quoted string", "Write it quoted in YAML: cpu_mask: \"f0\".")
    flags = p.benchmark_model_flags
    if not isinstance(flags, list) or not all(isinstance(f, str) and f.startswith("-") and "\x00" not in f
                                              for f in flags):
        fail("benchmark_model_flags", "must be a list of flags like --use_gpu=true")
    p.env = validate_env(p.env, where)


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
    try:
        data = read_yaml(path, "Device profile")
    except ConfigError:
        raise
    except (OSError, ValueError, RecursionError) as exc:  # unreadable, not UTF-8, an int of 5,000 digits
        raise ConfigError(f"Device profile cannot be read. Received: {str(path)!r} ({type(exc).__name__}: "
                          f"{str(exc)[:100]}). Fix or replace the file.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"A device profile must be a YAML mapping. Received: {type(data).__name__} in {str(path)!r}.")
    return data


def profile_from_dict(data: dict, *, name: str, source: str | None = None) -> DeviceProfile:
    unknown = sorted(map(str, set(data) - _FIELDS))
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
