"""`validate_export_args`: the checks on `export_tflite`'s settings, in one place.

`export_tflite` and recipes' `export:` sections both call it, so a recipe fails on
the values `export_tflite` would refuse, before any training starts.
"""

from __future__ import annotations

import math

from edgeopt.convert.precision import IODtype, Precision
from edgeopt.errors import ConfigError


def validate_export_args(*, calibration_samples: int = 200, io_dtype: str | IODtype = IODtype.INT8,
                         max_accuracy_drop: float | None = None, select_tf_ops: bool = False,
                         timeout_s: float = 1800.0, precisions=()) -> IODtype:
    """Raises `ConfigError` naming the first unacceptable argument; returns `io_dtype` as an `IODtype`.

    Args:
        calibration_samples: an integer >= 1. Defaults to `200`.
        io_dtype: `int8`, `uint8` or `float32`. Defaults to `"int8"`.
        max_accuracy_drop: `None`, or a finite number of accuracy points >= 0.
            Defaults to `None`.
        select_tf_ops: `True` or `False`. Defaults to `False`.
        timeout_s: a finite number of seconds > 0. Defaults to `1800.0`.
        precisions: the precisions asked for; `auto` needs `max_accuracy_drop` (its
            budget). Defaults to `()`.

    Raises:
        ConfigError: with the argument, the value received and what is allowed.
    """
    if not isinstance(calibration_samples, int) or isinstance(calibration_samples, bool) or calibration_samples < 1:
        raise ConfigError("calibration_samples must be an integer >= 1. "
                          f"Received: calibration_samples={calibration_samples!r}.")
    try:
        io_dtype = IODtype(str(io_dtype))
    except ValueError:
        raise ConfigError(
            f"Unknown io_dtype. Received: io_dtype={io_dtype!r}. Use one of: {', '.join(d.value for d in IODtype)}."
        ) from None
    if max_accuracy_drop is not None and not (
            isinstance(max_accuracy_drop, (int, float)) and not isinstance(max_accuracy_drop, bool)
            and math.isfinite(max_accuracy_drop) and max_accuracy_drop >= 0):
        raise ConfigError("max_accuracy_drop must be a number of accuracy points >= 0 (2.0 = two points), or None "
                          f"for no gate. Received: max_accuracy_drop={max_accuracy_drop!r}.")
    if not isinstance(select_tf_ops, bool):
        raise ConfigError(f"select_tf_ops must be true or false. Received: select_tf_ops={select_tf_ops!r}.")
    if not (isinstance(timeout_s, (int, float)) and not isinstance(timeout_s, bool)
            and math.isfinite(timeout_s) and timeout_s > 0):
        raise ConfigError(f"timeout_s must be a positive number of seconds. Received: timeout_s={timeout_s!r}. "
                          "Give the seconds one precision's conversion may take, e.g. 1800.")
    if max_accuracy_drop is None and any(str(p).lower() == Precision.AUTO for p in
                                         ([precisions] if isinstance(precisions, str) else precisions or ())):
        raise ConfigError("precision auto needs an accuracy budget. Received: max_accuracy_drop=None. Pass "
                          "--max-accuracy-drop 1.0 (max_accuracy_drop=1.0: at most one point below the float "
                          "model on the eval data).")
    return io_dtype
