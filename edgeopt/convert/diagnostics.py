"""What the TFLite converter says when it fails: its error lines, its hints, the ops it names.

The converter's exception text and log are MLIR diagnostics such as

    <unknown>:0: error: loc(callsite(fused["TensorListReserve:", "lstm/TensorArrayV2"] at ...)): 'tf.TensorListReserve' op requires element_shape to be static

whose location can be longer than the message and holds brackets, quotes and colons.
TensorFlow has no parser for them (`ConverterError.errors` carries only some of the
messages and none of the hints), so this one keeps the messages and drops the
locations. It reads any text: whatever it cannot make sense of is left out, never
raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ERROR = re.compile(r"\berror:\s*", re.IGNORECASE)
_NOTE = re.compile(r"\b(note|warning|remark):", re.IGNORECASE)
# Where the converter starts telling the user what to do.
_HINT = re.compile(r"(Please consider|you can enable|Consider using|Try using|use SELECT_TF_OPS|"
                   r"enable TF kernels fallback)", re.IGNORECASE)
_OPS = re.compile(r"^\s*(TF Select ops|Flex ops|Custom ops)\s*:\s*(.*)$", re.IGNORECASE)
# Lines that only say that something failed, without saying what.
_GENERIC = re.compile(r"^(failed while converting: .*|Could not translate MLIR to FlatBuffer\.?|"
                      r"Error code: \w+|called from|see current operation:.*)$", re.IGNORECASE)
_MAX_LINES = 20_000  # an MLIR dump can be megabytes; the messages come first
_WIDTH = 300


@dataclass(frozen=True)
class Diagnosis:
    """The converter's messages, one line each.

    Attributes:
        errors: its `error:` messages without their MLIR locations.
        hints: what it suggests ("Please consider using Select TF ops ...").
        select_ops: the TensorFlow ops it says need TF Select (Flex).
        custom_ops: the ops it says need a custom implementation.
    """

    errors: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()
    select_ops: tuple[str, ...] = ()
    custom_ops: tuple[str, ...] = ()

    @property
    def tensor_list(self) -> bool:
        """True when the failure is about TensorList ops (an RNN or loop without static shapes)."""
        return any("tensorlist" in line.lower().replace(" ", "") for line in self.errors + self.hints)

    def summary(self, width: int = _WIDTH) -> str:
        """The error messages on one line ("" when there are none)."""
        return _cut("; ".join(self.errors[:4]), width)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def skip_location(text: str) -> str:
    """`text` without a leading MLIR `loc(...)` (brackets balanced, quoted strings
    honoured) and the `:` after it. A location cut off before it closes leaves ""."""
    stripped = text.lstrip()
    if not stripped.startswith("loc("):
        return text
    depth, quoted, escaped = 0, False, False
    for i, char in enumerate(stripped):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
            if depth == 0:
                rest = stripped[i + 1:].lstrip()
                return rest[1:] if rest.startswith(":") else rest
    return ""


def _message(line: str) -> str | None:
    """The message of an `error:` line, or None for any other line."""
    match = _ERROR.search(line)
    if match is None:
        return None
    note = _NOTE.search(line)
    if note is not None and note.start() < match.start():
        return None  # "note: loc(...): Error code: ..." belongs to the error before it
    rest = skip_location(line[match.end():])
    if _ERROR.match(rest.lstrip()):  # "loc(...): error: message"
        rest = _ERROR.sub("", rest.lstrip(), count=1)
    return _one_line(rest)


def diagnose(*texts: str) -> Diagnosis:
    """Reads converter output (exception text, captured log) into a `Diagnosis`.

    Args:
        *texts: any text; `None` and non-strings are skipped.

    Returns:
        A `Diagnosis`, empty when the text holds no converter message. Never raises.
    """
    errors: list[str] = []
    hints: list[str] = []
    select_ops: list[str] = []
    custom_ops: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            continue
        for line in text.replace("\\n", "\n").splitlines()[:_MAX_LINES]:
            ops = _OPS.match(line)
            if ops is not None:
                names = [_one_line(n) for n in ops.group(2).split(",") if n.strip()]
                (custom_ops if ops.group(1).lower().startswith("custom") else select_ops).extend(names)
                continue
            message = _message(line)
            if message is None:
                if _HINT.search(line) and not _NOTE.search(line):
                    hints.append(_cut(_one_line(line), _WIDTH))
                continue
            hint = _HINT.search(message)
            if hint is not None:
                hints.append(_cut(message[hint.start():], _WIDTH))
                message = message[: hint.start()].strip()
            if message and not _GENERIC.match(message):
                errors.append(_cut(message, _WIDTH))
    unique = lambda items: tuple(dict.fromkeys(i for i in items if i))  # noqa: E731
    return Diagnosis(unique(errors), unique(hints), unique(select_ops), unique(custom_ops))


def first_line(text: str, fallback: str = "no message", width: int = _WIDTH) -> str:
    """The first meaningful line of `text` (MLIR locations dropped), or `fallback`."""
    if isinstance(text, str):
        for line in text.replace("\\n", "\n").splitlines()[:_MAX_LINES]:
            if _NOTE.search(line):
                continue
            message = _message(line)
            line = _one_line(skip_location(line) if message is None else message)
            if line and not _GENERIC.match(line):
                return _cut(line, width)
    return _cut(_one_line(str(fallback)), width) or "no message"
