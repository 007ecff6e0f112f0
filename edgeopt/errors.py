"""The exceptions edgeopt raises, and nothing else.

Every message says three things: what is wrong, what was received, and how to fix it.
The CLI prints an `EdgeoptError` as one line and exits with code 1; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeoptError(Exception):
    """Base class of every error edgeopt raises on purpose."""


class ConfigError(EdgeoptError, ValueError):
    """A recipe, a device profile, an argument or input data is not acceptable."""


class InvalidModelError(EdgeoptError):
    """A model file or directory is missing, malformed or of an unknown kind."""


class ConversionError(EdgeoptError):
    """The TFLite converter or a quantizer failed, or a converted model was rejected.

    Args:
        message: what went wrong, with a hint on how to fix it.
        log: what the converter printed while it ran (hidden unless `--verbose`).
            Defaults to `""`.
        errors: the converter's own error lines, without their MLIR locations.
            Defaults to `()`.
        report: the `ExportReport` of an export that failed part-way (every other
            precision's file and entry are in it). Defaults to `None`.
    """

    def __init__(self, message: str, *, log: str = "", errors=(), report=None):
        self.log = log
        self.errors = list(errors)
        self.report = report
        super().__init__(message)


class AccuracyGateError(ConversionError):
    """A converted model lost more accuracy than `max_accuracy_drop` allows."""


class OutputError(EdgeoptError):
    """An output file could not be written: disk full, read-only file system, no permission.

    Args:
        message: what went wrong, with a hint on how to fix it.
        path: the file that could not be written. Defaults to `None`.
        errno: the operating system's error number (`errno.ENOSPC`, ...). Defaults to `None`.
    """

    def __init__(self, message: str, *, path: str | None = None, errno: int | None = None):
        self.path = path
        self.errno = errno
        super().__init__(message)


class MissingDependencyError(EdgeoptError, ImportError):
    """An optional package is needed; the message names the `pip install` line."""


class DeviceError(EdgeoptError):
    """A benchmark device could not be used.

    The text reads `[device] message hint`; `message` and `hint` are also kept as
    fields, so a caller that shows them apart (`edgeopt devices check`) never
    re-parses the text.

    Args:
        message: what went wrong and what was received.
        device: name of the device profile involved. Defaults to `None`.
        hint: how to fix it, one sentence. Defaults to `None`.
    """

    def __init__(self, message: str, *, device: str | None = None, hint: str | None = None):
        self.device = device
        self.message = message
        self.hint = hint
        prefix = f"[{device}] " if device else ""
        super().__init__(prefix + message + (f" {hint}" if hint else ""))


class DeviceUnreachableError(DeviceError):
    """The device did not answer: host down, port closed, no adb device, timeout."""


class RemoteCommandError(DeviceError):
    """A command on the device exited non-zero or printed something unreadable.

    Args:
        message: what went wrong and what was received.
        device: name of the device profile. Defaults to `None`.
        hint: how to fix it, one sentence. Defaults to `None`.
        command: the argv that ran. Defaults to `None`.
        exit_code: its exit status. Defaults to `None`.
        stderr_tail: the last lines it printed on stderr. Defaults to `""`.
    """

    def __init__(
        self,
        message: str,
        *,
        device: str | None = None,
        hint: str | None = None,
        command: list[str] | None = None,
        exit_code: int | None = None,
        stderr_tail: str = "",
    ):
        self.command = command
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        super().__init__(message, device=device, hint=hint)
