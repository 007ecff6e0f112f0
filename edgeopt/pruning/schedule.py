"""Pruning schedules: the target sparsity at each training step."""

from __future__ import annotations

import abc
from typing import Any

from edgeopt.errors import ConfigError


def _check_sparsity(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1). Received: {name}={value!r}. "
                          "Sparsity is the fraction of weights set to zero, e.g. 0.8.")
    return float(value)


def _check_steps(begin_step: int, end_step: int) -> tuple[int, int]:
    if not isinstance(begin_step, int) or begin_step < 0:
        raise ConfigError(f"begin_step must be an integer >= 0. Received: begin_step={begin_step!r}.")
    if not isinstance(end_step, int) or (end_step != -1 and end_step <= begin_step):
        raise ConfigError(f"end_step must be greater than begin_step (or -1 for never). "
                          f"Received: begin_step={begin_step}, end_step={end_step!r}.")
    return begin_step, end_step


class PruningSchedule(abc.ABC):
    """The sparsity a pruning callback should reach at a given optimizer step.

    Subclasses validate their arguments in `__init__` and round-trip through
    `get_config()` / `from_config()`.
    """

    begin_step: int
    end_step: int  # -1: masks keep being updated until training stops

    @abc.abstractmethod
    def sparsity(self, step: int) -> float:
        """Target sparsity at `step` (0 before `begin_step`)."""

    @property
    @abc.abstractmethod
    def final_sparsity(self) -> float: ...

    @abc.abstractmethod
    def get_config(self) -> dict[str, Any]: ...

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "PruningSchedule":
        return cls(**config)

    def active(self, step: int) -> bool:
        return step >= self.begin_step and (self.end_step == -1 or step <= self.end_step)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


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
        self.begin_step, self.end_step = _check_steps(begin_step, end_step)
        if end_step == -1:
            raise ConfigError("PolynomialDecay needs an end_step. Received: end_step=-1. "
                              "Give the step at which final_sparsity is reached.")
        if not isinstance(power, (int, float)) or power <= 0:
            raise ConfigError(f"power must be > 0. Received: power={power!r}.")
        self.power = power

    @property
    def final_sparsity(self) -> float:
        return self._final

    def sparsity(self, step: int) -> float:
        if step < self.begin_step:
            return 0.0
        progress = min(1.0, (step - self.begin_step) / (self.end_step - self.begin_step))
        return self._final + (self.initial_sparsity - self._final) * (1.0 - progress) ** self.power

    def get_config(self) -> dict[str, Any]:
        return {"initial_sparsity": self.initial_sparsity, "final_sparsity": self._final,
                "begin_step": self.begin_step, "end_step": self.end_step, "power": self.power}
