"""What an export produced, precision by precision: `export_report.json`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPORT_NAME = "export_report.json"


@dataclass
class ExportEntry:
    """One exported precision: where it went, how big it is, how it validated.

    `status` is `ok`, `rejected` (below the accuracy gate, kept as `<file>.rejected`)
    or `failed` (no file; `error` says why, and for a crashed conversion process
    `stderr_tail` holds the end of what it printed). `warning` flags a file that was
    made but may not be what you want (an int4 far from float32, a model that could
    not be validated here).
    """

    precision: str
    status: str
    path: str | None
    sha256: str | None = None
    size_bytes: int | None = None
    gzip_size_bytes: int | None = None
    input_dtype: str | None = None
    output_dtype: str | None = None
    op_counts: dict[str, int] = field(default_factory=dict)
    float_ops: dict[str, int] = field(default_factory=dict)
    fully_integer: bool | None = None
    validation: dict | None = None
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    warning: str | None = None
    stderr_tail: str | None = None


@dataclass
class ExportReport:
    """What `export_tflite` produced, entry by entry; saved as `export_report.json`.

    `input` is the first input (`inputs` has all of them); `outputs` names the
    outputs in the order of every entry's `validation["outputs"]`.
    """

    model: str
    source: str
    input: dict
    output_dir: str
    entries: list[ExportEntry]
    reference: dict | None
    versions: dict
    seconds: float
    inputs: list[dict] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    select_tf_ops: bool = False

    def __getitem__(self, precision: str) -> ExportEntry:
        for entry in self.entries:
            if entry.precision == str(precision):
                return entry
        raise KeyError(precision)

    @property
    def ok(self) -> bool:
        return all(e.status == "ok" for e in self.entries)

    @property
    def warnings(self) -> list[str]:
        return [f"{e.precision}: {e.warning}" for e in self.entries if e.warning]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def path(self) -> Path:
        return Path(self.output_dir) / REPORT_NAME
