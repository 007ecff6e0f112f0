"""`SearchSettings`: a recipe's `search:` section, one key per constructor argument.

    search:
      device: local                 # where latency is measured (default: bench.devices[0])
      budget: {max_accuracy_drop: 1.0, max_latency_ms: 0.5, max_size_kb: 16, size: gzip}
      space: {sparsity: {low: 0.0, high: 0.9, step: 0.05}, clusters: [0, 8, 16], precision: [int8, float16]}
      sampler: tpe
      epochs: 2

The section's keys, defaults and checks are `SearchSettings`'s (and `Budget`'s for
`budget`, `SearchSpace`'s registry for `space`), read from their signatures, so the
recipe and the Python API cannot drift apart. Nothing here imports Optuna or
TensorFlow: recipes load without them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from typing import Any, Mapping

from edgeopt._checks import parse_choice
from edgeopt._compat import StrEnum
from edgeopt.errors import ConfigError
from edgeopt.search.budget import Budget
from edgeopt.search.space import SearchSpace
from edgeopt.search.storage import GRACE_S


class Sampler(StrEnum):
    """Optuna's multi-objective samplers, all with the budget as constraints."""

    TPE = "tpe"  # TPESampler: good from a few dozen trials
    NSGA2 = "nsga2"  # NSGAIISampler: generations of `startup_trials` trials
    RANDOM = "random"  # RandomSampler: a baseline to compare the others with


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class SearchSettings:
    """How a search runs: its space, its budget and the fine-tuning of each trial.

    Args:
        space: a `SearchSpace`, or its specs by dimension. Defaults to `None`
            (global sparsity, clusters and the float and 8-bit precisions).
        budget: a `Budget`, or its fields. Defaults to `None` (no limits: the report
            still shows the Pareto front).
        device: the device profile latency is measured on. Defaults to `None` (the
            recipe's first bench device, else `local`).
        sampler: `"tpe"`, `"nsga2"` or `"random"`. Defaults to `"tpe"`.
        startup_trials: random trials before TPE models the results (NSGA-II's
            population size). Defaults to `8`.
        epochs: fine-tuning epochs of each pruning or clustering step. Defaults to `2`.
        distill_epochs: epochs of distilling a student of another width. Defaults to `10`.
        stop_margin: a trial stops early (Optuna state PRUNED) after a fine-tuning epoch,
            from the middle of each step on, whose validation accuracy is more than
            `budget.max_accuracy_drop + stop_margin` points below the trained model's;
            `None` never stops early. Defaults to `5.0`.
        seed: seeds the sampler and every trial's fine-tuning. Defaults to `None` (the
            recipe's `train.seed`).
        grace_s: seconds a RUNNING trial's worker may stay silent (no heartbeat; one is
            sent every `grace_s / 10` s, at most 30 s apart) before another worker of a
            shared study marks the trial FAIL: its worker died. Defaults to `300.0`.

    Raises:
        ConfigError: the first argument that is not acceptable.
    """

    space: Any = None
    budget: Any = None
    device: str | None = None
    sampler: str = "tpe"
    startup_trials: int = 8
    epochs: int = 2
    distill_epochs: int = 10
    stop_margin: float | None = 5.0
    seed: int | None = None
    grace_s: float = float(GRACE_S)

    def __post_init__(self):
        if not isinstance(self.space, SearchSpace):
            self.space = SearchSpace(self.space)
        if self.budget is None:
            self.budget = Budget()
        elif isinstance(self.budget, Mapping):
            self.budget = make_budget(self.budget)
        elif not isinstance(self.budget, Budget):
            raise ConfigError(f"budget must be a mapping of limits. Received: budget={self.budget!r}.")
        if self.device is not None and (not isinstance(self.device, str) or not self.device):
            raise ConfigError(f"device must be a device profile name. Received: device={self.device!r}.")
        self.sampler = parse_choice(Sampler, self.sampler, argument="sampler")
        for name, low in (("startup_trials", 1), ("epochs", 1), ("distill_epochs", 1)):
            value = getattr(self, name)
            if not (_integer(value) and value >= low):
                raise ConfigError(f"{name} must be an integer >= {low}. Received: {name}={value!r}.")
        margin = self.stop_margin
        if margin is not None and not (isinstance(margin, (int, float)) and not isinstance(margin, bool)
                                       and 0 <= margin < float("inf")):
            raise ConfigError(f"stop_margin must be a number of accuracy points >= 0, or null to never stop early. "
                              f"Received: stop_margin={margin!r}.")
        grace = self.grace_s
        if not (isinstance(grace, (int, float)) and not isinstance(grace, bool) and 1 <= grace < float("inf")):
            raise ConfigError(f"grace_s must be a number of seconds >= 1. Received: grace_s={grace!r}.")
        if self.seed is not None and not (_integer(self.seed) and 0 <= self.seed < 2**32):
            raise ConfigError(f"seed must be an integer from 0 to 2**32 - 1, or null. Received: seed={self.seed!r}.")

    def to_dict(self) -> dict:
        """The settings as plain data (what a parsed recipe holds); they construct the same settings."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(space=self.space.to_dict(), budget=self.budget.to_dict(), sampler=str(self.sampler))
        return data


def make_budget(values: Mapping) -> Budget:
    """`Budget(**values)` with unknown keys refused by name."""
    allowed = set(inspect.signature(Budget).parameters)
    unknown = sorted(set(map(str, values)) - allowed)
    if unknown:
        raise ConfigError(f"Unknown key in budget. Received: {', '.join(unknown)}. "
                          f"Allowed: {', '.join(sorted(allowed))}.")
    return Budget(**values)


def section_keys() -> tuple[str, ...]:
    """The keys of a recipe's search section: `SearchSettings`'s arguments."""
    return tuple(inspect.signature(SearchSettings).parameters)


def parse_section(section: Any, path: str | None, *, builder: Any = None, check_devices: bool = True) -> dict:
    """A recipe's search section, checked by constructing `SearchSettings`, as plain data.

    Raises:
        ConfigError: naming the file and key: `r.yaml: search.budget.max_size_kb ...`.
    """
    from edgeopt.pipeline._checks import check_keys, mapping, where

    section = mapping(section, path, "search")
    check_keys(section, set(section_keys()), path, "search")
    from edgeopt.search.space import DIMENSIONS

    for key, allowed in (("space", set(DIMENSIONS)), ("budget", set(inspect.signature(Budget).parameters))):
        if section.get(key) is not None:
            check_keys(mapping(section[key], path, "search", key), allowed, path, "search", key)
    try:
        settings = SearchSettings(**{**section, "space": SearchSpace(section.get("space"), builder=builder)})
    except ConfigError as exc:
        raise ConfigError(f"{where(path, 'search')}.{exc}" if str(exc)[:1].islower() else
                          f"{where(path, 'search')}: {exc}") from None
    if check_devices and settings.device is not None:
        from edgeopt.pipeline.sections import check_device_names

        check_device_names([settings.device], where(path, "search", "device"))
    return settings.to_dict()
