"""The package's shape: one concept per module, none over 400 lines."""

from __future__ import annotations

from pathlib import Path

import edgeopt

PACKAGE = Path(edgeopt.__file__).parent
MAX_LINES = 400


def test_no_module_is_over_400_lines():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines())
             for p in PACKAGE.rglob("*.py")}
    assert len(sizes) > 50
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
