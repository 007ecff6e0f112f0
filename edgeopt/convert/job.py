"""The conversion job handed from the exporter to its child process, and what comes back.

Everything lies in one scratch directory: `job.json` (what to make), the traced
SavedModel, `calibration.npz` / `eval.npz` / `check.npz` (one array per input, in
signature order), and per precision `<precision>.json` (status, settings, error),
`<precision>.tflite` and `<precision>.out.npz` (its outputs on the eval and check
samples). A result is written whole (temporary name, then rename), so a child that
dies leaves only finished precisions behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

JOB_NAME = "job.json"


@dataclass
class Job:
    """What the child converts and runs.

    Attributes:
        saved_model: the traced SavedModel directory.
        precisions: the precisions to report, in order (float32 is always made first,
            as the base of the ai-edge-quantizer precisions).
        inputs: the signature input names, in order.
        outputs: the signature output names, in order.
        batch_size: the fixed batch size of the inputs, or None.
        io_dtype: input/output type of int8.
        quantization_aware: int8 takes the model's learned ranges.
        select_tf_ops: allow Select TF (Flex) ops.
        output_kinds: what each output is (see `edgeopt.convert.validate`), when the
            eval labels told; else None and the kinds follow the output shapes.
        max_accuracy_drop: the accuracy budget in points (for `auto`), or None.
        has_calibration, has_eval, has_check, has_reference: which sample files exist
            (`reference`: the Keras model's outputs on the eval samples, for `auto`).
    """

    saved_model: str
    precisions: list[str]
    inputs: list[str]
    outputs: list[str]
    batch_size: int | None = None
    io_dtype: str = "int8"
    quantization_aware: bool = False
    select_tf_ops: bool = False
    output_kinds: list[str] | None = None
    max_accuracy_drop: float | None = None
    has_calibration: bool = False
    has_eval: bool = False
    has_check: bool = False
    has_reference: bool = False
    directory: str = field(default="", compare=False)

    @property
    def dir(self) -> Path:
        return Path(self.directory)

    def save(self) -> Path:
        path = self.dir / JOB_NAME
        _write_json(path, {k: v for k, v in asdict(self).items() if k != "directory"})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Job":
        path = Path(path)
        return cls(**json.loads(path.read_text()), directory=str(path.parent))

    def write_samples(self, kind: str, arrays: list[np.ndarray]) -> None:
        np.savez(self.dir / f"{kind}.npz", **{str(i): a for i, a in enumerate(arrays)})

    def read_samples(self, kind: str) -> list[np.ndarray] | None:
        path = self.dir / f"{kind}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as archive:
            return [archive[str(i)] for i in range(len(archive.files))]

    def write_labels(self, labels) -> None:
        """The eval labels of each output (`Labels`; those without labels are left out)."""
        np.savez(self.dir / "labels.npz", **{str(i): lab.y for i, lab in enumerate(labels) if lab.y is not None})

    def read_labels(self):
        """One `Labels` per output (kinds from `output_kinds`), or None when none were written."""
        from edgeopt.convert.validate import Labels

        path = self.dir / "labels.npz"
        if not path.is_file() or not self.output_kinds:
            return None
        with np.load(path, allow_pickle=False) as archive:
            return [Labels(kind, archive[str(i)] if str(i) in archive.files else None)
                    for i, kind in enumerate(self.output_kinds)]

    def write_extra(self, name: str, data: bytes) -> None:
        """A .tflite made on the side (e.g. `auto.int8`, the baseline of auto's latency)."""
        _write_bytes(self.model_path(name), data)

    def result_path(self, precision: str) -> Path:
        return self.dir / f"{precision}.json"

    def model_path(self, precision: str) -> Path:
        return self.dir / f"{precision}.tflite"

    def write_result(self, precision: str, result: dict, data: bytes | None = None,
                     outputs: dict[str, list[np.ndarray]] | None = None) -> None:
        """Writes the model, its outputs, then the result (last: its presence means done)."""
        if data is not None:
            _write_bytes(self.model_path(precision), data)
        if outputs:
            tmp = self.dir / f".{precision}.out.tmp.npz"
            np.savez(tmp, **{f"{kind}_{i}": a for kind, arrays in outputs.items() for i, a in enumerate(arrays)})
            os.replace(tmp, self.dir / f"{precision}.out.npz")
        _write_json(self.result_path(precision), result)

    def read_result(self, precision: str) -> dict | None:
        path = self.result_path(precision)
        return json.loads(path.read_text()) if path.is_file() else None

    def read_outputs(self, precision: str, kind: str) -> list[np.ndarray] | None:
        path = self.dir / f"{precision}.out.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as archive:
            found = sorted((int(n.rsplit("_", 1)[1]), n) for n in archive.files if n.rsplit("_", 1)[0] == kind)
            return [archive[n] for _, n in found] or None

    def done(self) -> set[str]:
        return {p for p in ["float32", *self.precisions] if self.result_path(p).is_file()}


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    _write_bytes(path, json.dumps(data, default=str).encode())


def failed_result(precision: str, error: str, *, seconds: float = 0.0, stderr_tail: str | None = None) -> dict:
    """The result of a precision that did not finish."""
    return {"precision": precision, "status": "failed", "error": error, "settings": {}, "seconds": seconds,
            "stderr_tail": stderr_tail}
