"""Argument type checks shared by the public constructors.

NumPy scalars count as numbers (tfmot's own guide computes
`end_step = np.ceil(n / batch_size).astype(np.int32) * epochs`); booleans never do,
although Python's `bool` is an `int` and NumPy's `bool_` converts to one.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any, TypeVar

import numpy as np

from edgeopt.errors import ConfigError

E = TypeVar("E", bound=Enum)


def is_integer(value: Any) -> bool:
    """True for `int` and NumPy integers; False for `bool`, `np.bool_` and everything else."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """True for finite ints, floats and their NumPy kinds; False for bools, NaN and infinities."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(float(value))


def parse_choice(choices: type[E], value: Any, *, argument: str, what: str | None = None) -> E:
    """`value` as a member of the `StrEnum` `choices`, or a `ConfigError` that names
    `argument`, the value and every choice ("Unknown `what`" leads it; defaults to `argument`)."""
    try:
        return choices(value)
    except (ValueError, TypeError):
        raise ConfigError(f"Unknown {what or argument}. Received: {argument}={value!r}. "
                          f"Use one of: {', '.join(c.value for c in choices)}.") from None
