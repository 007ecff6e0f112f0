"""Pruning schedules: the target sparsity at each step of a pruning run.

A schedule's step counts the training batches pruned under it, starting from 0 at the
first batch the `Pruning` callback prunes (not the optimizer's iteration count: a model
trained before pruning starts at step 0 too).
"""

from __future__ import annotations

import abc
import hashlib
import json
from typing import Any

from edgeopt._checks import is_integer, is_real
from edgeopt.errors import ConfigError

_REGISTRY: dict[str, type["PruningSchedule"]] = {}


def _check_sparsity(name: str, value: Any) -> float:
    if not is_real(value) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name} must be in [0, 1). Received: {name}={value!r}. "
                          "Sparsity is the fraction of weights set to zero, e.g. 0.8.")
    return float(value)


def _check_steps(begin_step: Any, end_step: Any) -> tuple[int, int]:
    if not is_integer(begin_step) or begin_step < 0:
        raise ConfigError(f"begin_step must be an integer >= 0. Received: begin_step={begin_step!r} "
                          f"({type(begin_step).__name__}). Pass a whole number of steps, e.g. 0.")
    if not is_integer(end_step):
        raise ConfigError(f"end_step must be an integer (or -1 for never). Received: end_step={end_step!r} "
                          f"({type(end_step).__name__}). Pass a whole number of steps, e.g. int(end_step).")
    begin_step, end_step = int(begin_step), int(end_step)
    if end_step != -1 and end_step <= begin_step:
        raise ConfigError(f"end_step must be greater than begin_step (or -1 for never). "
                          f"Received: begin_step={begin_step}, end_step={end_step}. Raise end_step.")
    return begin_step, end_step


class PruningSchedule(abc.ABC):
    """The sparsity a pruning callback should reach at a given step of its run.

    Masks are updated at `begin_step`, then every `frequency` steps, and at `end_step`
    itself (so the final sparsity is reached even when `end_step - begin_step` is not a
    multiple of the frequency). Subclasses validate their arguments in `__init__` and
    round-trip through `get_config()` / `from_config()`.
    """

    begin_step: int
    end_step: int  # -1: masks keep being updated until training stops

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    @abc.abstractmethod
    def sparsity(self, step: int) -> float:
        """Target sparsity at `step` (0 before `begin_step`)."""

    @property
    @abc.abstractmethod
    def final_sparsity(self) -> float: ...

    @property
    def monotone(self) -> bool:
        """Whether the target never decreases with the step."""
        return True

    @abc.abstractmethod
    def get_config(self) -> dict[str, Any]: ...

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "PruningSchedule":
        return cls(**config)

    def active(self, step: int) -> bool:
        return step >= self.begin_step and (self.end_step == -1 or step <= self.end_step)

    # -- the update grid: begin, begin + f, begin + 2f, ..., end ----------------------
    # An update step g happens at the end of the batch after which the run has done
    # max(g, 1) steps (step 0 is the end of the first batch).

    def next_update(self, done: int, frequency: int) -> int | None:
        """The first update step still pending after `done` steps; None when none is left."""
        begin, end = self.begin_step, self.end_step
        if done < max(begin, 1):
            step = begin
        else:
            step = begin + ((done - begin) // frequency + 1) * frequency
        if end != -1 and step > end:
            return end if end > done else None
        return step

    def last_update(self, done: int, frequency: int) -> int | None:
        """The latest update step that has happened after `done` steps; None before the first."""
        begin, end = self.begin_step, self.end_step
        if done < max(begin, 1):
            return None
        if end != -1 and done >= end:
            return end
        return begin + (done - begin) // frequency * frequency

    def step_reached(self, sparsity: float, frequency: int, tolerance: float) -> int:
        """The latest update step whose target does not exceed `sparsity` (+ `tolerance`).

        That is where a run of this schedule stands when the model is `sparsity` sparse:
        used to resume a model that carries no saved step. 0 when the schedule has not
        reached even its first target, or when it is not monotone.
        """
        if not self.monotone or self.sparsity(self.begin_step) > sparsity + tolerance:
            return 0
        if self.end_step == -1:
            return self.begin_step
        if self.sparsity(self.end_step) <= sparsity + tolerance:
            return self.end_step
        low, high = 0, -(-(self.end_step - self.begin_step) // frequency)  # grid indices; high is end
        while high - low > 1:  # invariant: grid[low] reached, grid[high] not
            mid = (low + high) // 2
            if self.sparsity(self.begin_step + mid * frequency) <= sparsity + tolerance:
                low = mid
            else:
                high = mid
        return self.begin_step + low * frequency

    def key(self) -> int:
        """A stable 63-bit fingerprint of the schedule's type and config."""
        text = json.dumps(serialize_schedule(self), sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") & 0x7FFFFFFFFFFFFFFF

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return self.key()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def serialize_schedule(schedule: PruningSchedule) -> dict[str, Any]:
    """`{"class_name": ..., "config": ...}`, JSON-serialisable."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize_schedule(data: Any) -> PruningSchedule:
    """The inverse of `serialize_schedule`; a schedule object passes through."""
    if isinstance(data, PruningSchedule):
        return data
    if not isinstance(data, dict) or set(data) != {"class_name", "config"} or data["class_name"] not in _REGISTRY:
        raise ConfigError(f"Not a serialized pruning schedule. Received: {data!r}. Expected "
                          f"{{'class_name': one of {sorted(_REGISTRY)}, 'config': {{...}}}} from serialize_schedule().")
    return _REGISTRY[data["class_name"]].from_config(dict(data["config"]))


class ConstantSparsity(PruningSchedule):
    """Prune to `target_sparsity` from `begin_step` on.

    Args:
        target_sparsity: fraction of weights to zero, in [0, 1).
        begin_step: first step at which to prune. Defaults to `0`.
        end_step: last step at which masks are updated. Defaults to `-1` (never stop).
    """

    def __init__(self, target_sparsity: float, begin_step: int = 0, end_step: int = -1):
        self.target_sparsity = _check_sparsity("target_sparsity", target_sparsity)
        self.begin_step, self.end_step = _check_steps(begin_step, end_step)

    def sparsity(self, step: int) -> float:
        return self.target_sparsity if step >= self.begin_step else 0.0

    @property
    def final_sparsity(self) -> float:
        return self.target_sparsity

    def get_config(self) -> dict[str, Any]:
        return {"target_sparsity": self.target_sparsity, "begin_step": self.begin_step, "end_step": self.end_step}


class PolynomialDecay(PruningSchedule):
    """Sparsity rising from `initial_sparsity` to `final_sparsity` along a polynomial.

    `s(t) = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0)) ** power` for t0 <= t <= t1;
    `power=3` is the cubic schedule of Zhu & Gupta (2017), "To prune, or not to prune".

    Args:
        initial_sparsity: sparsity at `begin_step`, in [0, 1).
        final_sparsity: sparsity at `end_step` and after, in [0, 1).
        begin_step: step at which pruning starts.
        end_step: step at which `final_sparsity` is reached (> `begin_step`).
        power: exponent of the decay. Defaults to `3`.
    """

    def __init__(self, initial_sparsity: float, final_sparsity: float, begin_step: int, end_step: int,
                 power: float = 3):
        self.initial_sparsity = _check_sparsity("initial_sparsity", initial_sparsity)
        self._final = _check_sparsity("final_sparsity", final_sparsity)
        if is_integer(end_step) and end_step == -1:
            raise ConfigError("PolynomialDecay needs an end_step. Received: end_step=-1. "
                              "Give the step at which final_sparsity is reached.")
        self.begin_step, self.end_step = _check_steps(begin_step, end_step)
        if not is_real(power) or power <= 0:
            raise ConfigError(f"power must be > 0. Received: power={power!r}. 3 is the cubic schedule.")
        self.power = int(power) if is_integer(power) else float(power)

    @property
    def final_sparsity(self) -> float:
        return self._final

    @property
    def monotone(self) -> bool:
        return self.initial_sparsity <= self._final

    def sparsity(self, step: int) -> float:
        if step < self.begin_step:
            return 0.0
        progress = min(1.0, (step - self.begin_step) / (self.end_step - self.begin_step))
        return self._final + (self.initial_sparsity - self._final) * (1.0 - progress) ** self.power

    def get_config(self) -> dict[str, Any]:
        return {"initial_sparsity": self.initial_sparsity, "final_sparsity": self._final,
                "begin_step": self.begin_step, "end_step": self.end_step, "power": self.power}
