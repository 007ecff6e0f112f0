"""`manifest.json`: what a run did, stage by stage, so it can be resumed and audited.

Each stage records a hash of its inputs (settings plus the hashes of the files it
read), the files it wrote with their sha256, its status and its wall time. The
manifest is rewritten atomically after every stage, so an interrupted run leaves a
consistent one, and `--resume` skips every stage whose inputs hash the same and whose
outputs are still there, unchanged.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from edgeopt._files import atomic_write_json, sha256_file
from edgeopt._versions import versions
from edgeopt.errors import ConfigError
from edgeopt.pipeline.layout import MANIFEST
from edgeopt.pipeline.readers import load_manifest

__all__ = ["MANIFEST", "Manifest", "hash_inputs"]


def hash_inputs(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Manifest:
    """The manifest of one run directory."""

    def __init__(self, run_dir: Path, data: dict):
        self.run_dir = Path(run_dir)
        self.data = data

    @classmethod
    def open(cls, run_dir: str | Path, recipe: dict, recipe_path: str | None, *, resume: bool) -> "Manifest":
        run_dir = Path(run_dir)
        path = run_dir / MANIFEST
        if resume:
            if not path.is_file():
                raise ConfigError(f"Nothing to resume: no {MANIFEST} in the run directory. Received: {str(run_dir)!r}. "
                                  "Pass the directory of an earlier `edgeopt run`.")
            data = load_manifest(run_dir)
            data["recipe"] = recipe
        else:
            data = {"recipe": recipe, "recipe_path": recipe_path, "created": _now(), "stages": {}}
        data.update(versions=versions(), updated=_now(), status="running")
        manifest = cls(run_dir, data)
        manifest.save()
        return manifest

    @property
    def stages(self) -> dict[str, dict]:
        return self.data["stages"]

    def save(self) -> None:
        self.data["updated"] = _now()
        atomic_write_json(self.run_dir / MANIFEST, self.data)

    def is_done(self, key: str, input_hash: str, *, needs: str | None = None) -> bool:
        """True when `key` is done with these inputs and its outputs are unchanged on disk.

        Args:
            key: the stage.
            input_hash: the hash of its inputs now.
            needs: a file stem the stage must have written (`"model"`). Defaults to `None`.
        """
        entry = self.stages.get(key)
        if not entry or entry.get("status") != "done" or entry.get("input_hash") != input_hash:
            return False
        outputs = entry.get("outputs", {})
        if needs is not None and not any(Path(rel).stem == needs for rel in outputs):
            return False
        for rel, digest in outputs.items():
            path = self.run_dir / rel
            if not path.is_file() or sha256_file(path) != digest:
                return False
        return True

    def output_hashes(self, key: str) -> dict[str, str]:
        return dict(self.stages.get(key, {}).get("outputs", {}))

    def record(self, key: str, *, input_hash: str, status: str, seconds: float, outputs: list[Path] = (),
               error: str | None = None, info: dict | None = None) -> None:
        self.stages[key] = {
            "status": status,
            "input_hash": input_hash,
            "outputs": {str(Path(p).relative_to(self.run_dir)): sha256_file(p) for p in outputs if Path(p).is_file()},
            "seconds": round(seconds, 3),
            "finished": _now(),
            **({"error": error} if error else {}),
            **({"info": info} if info else {}),
        }
        self.save()

    def finish(self, status: str) -> None:
        self.data["status"] = status
        self.save()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
