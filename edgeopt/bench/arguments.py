"""`validate_bench_args`: the checks on a measurement's settings, in one place.

`measure_latency`, `bench` and recipes' `bench:` sections all call it, so a value
accepted in one is accepted in all (the CLI's click ranges are no looser).
"""

from __future__ import annotations

import math

from edgeopt.errors import ConfigError


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_bench_args(*, threads: int | None = None, runs: int = 50, warmup: int = 5, min_secs: float = 1.0,
                        max_secs: float = 150.0, keep: bool = False) -> None:
    """Raises `ConfigError` naming the first unacceptable argument.

    Args:
        threads: `None` or an integer >= 1. Defaults to `None`.
        runs: an integer >= 1. Defaults to `50`.
        warmup: an integer >= 0. Defaults to `5`.
        min_secs: a finite number >= 0, at most `max_secs`. Defaults to `1.0`.
        max_secs: a finite number > 0. Defaults to `150.0`.
        keep: a boolean. Defaults to `False`.

    Raises:
        ConfigError: with the argument, the value received and what is allowed.
    """
    if threads is not None and not (_integer(threads) and threads >= 1):
        raise ConfigError(f"threads must be an integer >= 1, or None for the default. Received: threads={threads!r}.")
    if not (_integer(runs) and runs >= 1):
        raise ConfigError(f"runs must be an integer >= 1. Received: runs={runs!r}.")
    if not (_integer(warmup) and warmup >= 0):
        raise ConfigError(f"warmup must be an integer >= 0. Received: warmup={warmup!r}.")
    if not (_number(max_secs) and max_secs > 0):
        raise ConfigError(f"max_secs must be a number of seconds > 0. Received: max_secs={max_secs!r}.")
    if not (_number(min_secs) and 0 <= min_secs <= max_secs):
        raise ConfigError(f"min_secs must be a number of seconds from 0 to max_secs ({max_secs}). "
                          f"Received: min_secs={min_secs!r}.")
    if not isinstance(keep, bool):
        raise ConfigError(f"keep must be true or false. Received: keep={keep!r}.")
