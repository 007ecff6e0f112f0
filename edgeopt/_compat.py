"""Small shims for older Pythons."""

from __future__ import annotations

import enum

try:  # Python >= 3.11
    from enum import StrEnum
except ImportError:  # pragma: no cover - Python 3.10

    class StrEnum(str, enum.Enum):  # type: ignore[no-redef]
        """A `str` enum whose members compare equal to, and print as, their value."""

        def __str__(self) -> str:
            return str(self.value)


__all__ = ["StrEnum"]
