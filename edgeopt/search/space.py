"""`SearchSpace`: what a search may choose, one registry line per dimension.

A recipe's `search.space` maps dimension names to value specs:

    space:
      student: {width: [4, 8, 16]}          # builder kwargs of a distilled student
      channel_ratio: [0.0, 0.25, 0.5]       # whole channels removed (0 = none)
      sparsity: {low: 0.0, high: 0.9, step: 0.05}
      layer_sparsity: {dense1: [0.5, 0.9]}  # optional, per named layer
      clusters: [0, 8, 16]                  # 0 = no clustering
      precision: [float32, float16, dynamic, int8]

A spec is a list (the choices), a mapping `{low, high, step, log}` (a range), or one
value (fixed). `DIMENSIONS` is the only table of dimension names: each entry says how
its spec is checked and which recipe steps a sampled value becomes, in the order the
entries are listed (distill, then pruning, then clustering; precision picks the export).
A new technique is one line, as `channel_ratio` is (edgeopt.prune_channels, through the
`channel_pruning` recipe step).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from edgeopt.errors import ConfigError

Step = tuple  # (technique, settings, keep): `keep` holds the zeros of earlier pruning steps


@dataclass(frozen=True)
class Choice:
    """One of a list of values (Optuna's categorical distribution)."""

    values: tuple

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))

    def to_spec(self) -> list:
        return list(self.values)

    def can_be(self, test: Callable[[Any], bool]) -> bool:
        return any(test(v) for v in self.values)


@dataclass(frozen=True)
class Range:
    """A number from `low` to `high`, on a grid of `step` or log-uniform."""

    low: float
    high: float
    step: float | None = None
    log: bool = False
    integer: bool = False

    def suggest(self, trial: Any, name: str) -> Any:
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def to_spec(self) -> dict:
        return {"low": self.low, "high": self.high, "step": self.step, "log": self.log}

    def can_be(self, test: Callable[[Any], bool]) -> bool:
        return test(self.high) or test(self.low)


@dataclass(frozen=True)
class StepContext:
    """What turning sampled values into recipe steps needs beyond the values."""

    epochs: int  # fine-tune epochs of each pruning / clustering step
    distill_epochs: int
    steps_per_epoch: int
    builder: str | None = None  # the recipe's `model.builder`, which builds students too
    base_kwargs: Mapping[str, Any] = ()  # the trained model's builder kwargs


# -- value checks ---------------------------------------------------------------------


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _scalar(value) -> bool:
    return value is None or isinstance(value, (bool, str)) or _number(value)


def domain(spec: Any, where: str, check: Callable[[Any], Any], *, integer: bool | None = False,
           numeric: bool = True) -> Choice | Range:
    """A spec (list, range mapping or one value) as a `Choice` or `Range`, every value
    passed through `check` (which returns it, normalised, or raises `ConfigError`).
    `integer=None`: a range of integers when its bounds (and step) are integers."""
    if isinstance(spec, Mapping):
        unknown = sorted(set(map(str, spec)) - {"low", "high", "step", "log"})
        if unknown or not numeric:
            raise ConfigError(f"{where} must be a list of values{'' if not numeric else ' or {low, high, step, log}'}. "
                              f"Received: {dict(spec)!r}.")
        low, high, step, log = spec.get("low"), spec.get("high"), spec.get("step"), spec.get("log", False)
        if not (_number(low) and _number(high) and low <= high):
            raise ConfigError(f"{where} needs numbers low <= high. Received: low={low!r}, high={high!r}.")
        if integer is None:
            integer = all(isinstance(v, int) for v in (low, high, step if step is not None else 1))
        if integer and not (float(low).is_integer() and float(high).is_integer()):
            raise ConfigError(f"{where} is a range of integers. Received: low={low!r}, high={high!r}.")
        if step is not None and not (_number(step) and step > 0 and (not integer or float(step).is_integer())):
            raise ConfigError(f"{where}.step must be a positive {'integer' if integer else 'number'} or null. "
                              f"Received: step={step!r}.")
        if not isinstance(log, bool) or (log and (step is not None or low <= 0)):
            raise ConfigError(f"{where}.log must be true or false; a log range needs low > 0 and no step. "
                              f"Received: log={log!r}, low={low!r}, step={step!r}.")
        check(low), check(high)
        if integer:
            low, high, step = int(low), int(high), None if step is None else int(step)
        else:
            low, high, step = float(low), float(high), None if step is None else float(step)
        return Range(low, high, step, log, integer)
    values = spec if isinstance(spec, list) else [spec]
    if not values:
        raise ConfigError(f"{where} must list at least one value. Received: [].")
    if not all(_scalar(v) for v in values):
        raise ConfigError(f"{where} values must be numbers, strings, booleans or null. Received: {spec!r}.")
    checked = tuple(check(v) for v in values)
    if len(set(map(repr, checked))) != len(checked):
        raise ConfigError(f"{where} lists a value twice. Received: {spec!r}. List each once.")
    return Choice(checked)


def _fraction(spec, where, context) -> Choice | Range:
    def check(value):
        if not (_number(value) and 0 <= value < 1):
            raise ConfigError(f"{where} values must be fractions from 0 to below 1. Received: {value!r}.")
        return float(value)

    return domain(spec, where, check)


def _layer_fractions(spec, where, context) -> dict[str, Choice | Range]:
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(f"{where} must map layer names to sparsity values. Received: {spec!r}. "
                          "Example: {dense1: [0.5, 0.9]}.")
    for name in spec:
        if not isinstance(name, str) or not name or any(c in name for c in "*?[]"):
            raise ConfigError(f"{where} keys must be layer names (no wildcards). Received: {name!r}.")
    return {name: _fraction(value, f"{where}.{name}", context) for name, value in spec.items()}


def _clusters(spec, where, context) -> Choice | Range:
    def check(value):
        if not (isinstance(value, int) and not isinstance(value, bool) and (value == 0 or value >= 2)):
            raise ConfigError(f"{where} values must be 0 (no clustering) or integers >= 2. Received: {value!r}.")
        return value

    return domain(spec, where, check, integer=True)


def _precisions(spec, where, context) -> Choice:
    from edgeopt.convert.precision import Precision, parse_precisions

    def check(value):
        if not isinstance(value, str):
            raise ConfigError(f"{where} values must be precision names. Received: {value!r}. "
                              f"Use any of: {', '.join(p.value for p in Precision)}.")
        try:
            return str(parse_precisions(value)[0])
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    return domain(spec, where, check, numeric=False)


def _student(spec, where, context) -> dict[str, Choice | Range]:
    builder = context.get("builder", UNCHECKED)
    if builder is None:
        raise ConfigError(f"{where} sets builder kwargs, so the recipe's model needs a builder. Received: "
                          "model.path. Use model: {builder: package.module:function}, or drop student.")
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(f"{where} must map builder kwargs to values. Received: {spec!r}. "
                          "Example: {width: [4, 8, 16]}.")
    try:
        parameters = None if builder is UNCHECKED else inspect.signature(builder).parameters
    except (TypeError, ValueError):
        parameters = None
    out = {}
    for name, value in spec.items():
        if parameters is not None and name not in parameters and not any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            raise ConfigError(f"{where}: the builder takes no argument {name!r}. Received: {name!r}. "
                              f"Its arguments: {', '.join(parameters)}.")
        out[str(name)] = domain(value, f"{where}.{name}", lambda v: v, integer=None)
    return out


# -- steps ----------------------------------------------------------------------------


def technique_steps(kind: str, key: str) -> Callable[[str, dict, StepContext], list[Step]]:
    """A dimension whose value `v` (when truthy) is one `kind` step with `{key: v}`."""

    def steps(name: str, params: dict, context: StepContext) -> list[Step]:
        value = params.get(name)
        return [(kind, {key: value, "epochs": context.epochs}, False)] if value else []

    return steps


def _distill_steps(name: str, params: dict, context: StepContext) -> list[Step]:
    kwargs = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(f"{name}.")}
    base = dict(context.base_kwargs)
    if not kwargs or all(base.get(k, _MISSING) == v for k, v in kwargs.items()):
        return []  # the trained model already is this student
    student = {"builder": context.builder, "path": None, "kwargs": {**base, **kwargs}}
    return [("distill", {"student": student, "epochs": context.distill_epochs}, False)]


_MISSING = object()
UNCHECKED = object()  # SearchSpace(builder=...) default: the builder is not known here


def _pruning_schedule(sparsity: float, context: StepContext) -> dict:
    end = context.steps_per_epoch * max(1, context.epochs - 1)  # the last epoch recovers at full sparsity
    return {"schedule": {"polynomial_decay": {"initial_sparsity": 0.0, "final_sparsity": sparsity,
                                              "begin_step": 0, "end_step": end}},
            "frequency": max(1, end // 8), "epochs": context.epochs}


def _pruning_steps(name: str, params: dict, context: StepContext) -> list[Step]:
    """Global sparsity over every prunable layer but the named ones, then each named layer
    to its own sparsity, keeping the zeros of the steps before."""
    layers = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("layer_sparsity.") and v}
    named = sorted(k.split(".", 1)[1] for k in params if k.startswith("layer_sparsity."))
    steps: list[Step] = []
    if params.get(name):
        steps.append(("pruning", {**_pruning_schedule(params[name], context), "scope": "global",
                                  **({"exclude": named} if named else {})}, False))
    for layer, sparsity in sorted(layers.items()):
        steps.append(("pruning", {**_pruning_schedule(sparsity, context), "include": [layer]}, bool(steps)))
    return steps


def _clustering_steps(name: str, params: dict, context: StepContext) -> list[Step]:
    clusters = params.get(name)
    return [("clustering", {"clusters": clusters, "epochs": context.epochs}, False)] if clusters else []


def _no_steps(name: str, params: dict, context: StepContext) -> list[Step]:
    return []


@dataclass(frozen=True)
class Dimension:
    """A search dimension: `parse(spec, where, context)` checks its spec into a `Choice`,
    a `Range` or a mapping of them; `steps(name, params, context)` are the recipe steps
    its sampled values become."""

    parse: Callable[[Any, str, dict], Any]
    steps: Callable[[str, dict, StepContext], list[Step]]


# Application order: distill a student, remove channels, prune, cluster; precision only picks the export.
DIMENSIONS: dict[str, Dimension] = {
    "student": Dimension(_student, _distill_steps),
    "channel_ratio": Dimension(_fraction, technique_steps("channel_pruning", "ratio")),
    "sparsity": Dimension(_fraction, _pruning_steps),
    "layer_sparsity": Dimension(_layer_fractions, _no_steps),  # its steps come with sparsity's
    "clusters": Dimension(_clusters, _clustering_steps),
    "precision": Dimension(_precisions, _no_steps),
}


def default_space() -> dict:
    """The space of a `search` section without `space`: global sparsity, clusters and
    every float and 8-bit precision (with `auto` where the exporter has it)."""
    from edgeopt.convert.precision import Precision

    precisions = ["float32", "float16", "dynamic", "int8"]
    if "auto" in {p.value for p in Precision}:  # the exporter's own pick, where it has one
        precisions.append("auto")
    return {"sparsity": {"low": 0.0, "high": 0.9, "step": 0.05, "log": False}, "clusters": [0, 8, 16, 32],
            "precision": precisions}


class SearchSpace:
    """The dimensions a search samples, checked as `DIMENSIONS` says.

    Args:
        dimensions: dimension name -> spec, as in a recipe's `search.space`.
            Defaults to `None` (`default_space()`).
        builder: the model builder, to check `student` kwargs against; `None` for a
            model without one (a file), where `student` is refused. Defaults to
            `UNCHECKED` (the kwargs are checked when the student is built).

    Raises:
        ConfigError: an unknown dimension or a bad spec, naming it.
    """

    def __init__(self, dimensions: Mapping[str, Any] | None = None, *, builder: Any = UNCHECKED):
        if dimensions is None:
            dimensions = default_space()
        if not isinstance(dimensions, Mapping) or not dimensions:
            raise ConfigError(f"space must map dimensions to values. Received: {dimensions!r}. "
                              f"Dimensions: {', '.join(DIMENSIONS)}.")
        unknown = sorted(set(map(str, dimensions)) - set(DIMENSIONS))
        if unknown:
            raise ConfigError(f"Unknown key in space. Received: {', '.join(unknown)}. Allowed: "
                              f"{', '.join(sorted(DIMENSIONS))}.")
        context = {"builder": builder}
        self.domains = {name: DIMENSIONS[name].parse(dimensions[name], f"space.{name}", context)
                        for name in DIMENSIONS if name in dimensions}
        if "precision" not in self.domains:
            self.domains["precision"] = Choice(("float32",))
        self._check_combinations()

    def _check_combinations(self) -> None:
        clusters = self.domains.get("clusters")
        sparse = any(isinstance(d, (Choice, Range)) and d.can_be(lambda v: v > 0)
                     for d in [self.domains.get("sparsity"), *self.domains.get("layer_sparsity", {}).values()] if d)
        if clusters is not None and sparse and clusters.can_be(lambda v: v == 2):
            raise ConfigError("space.clusters: 2 clusters cannot keep pruned zeros (zero takes one of them). "
                              "Received: 2 with sparsity > 0. Use 0 or >= 3.")

    def to_dict(self) -> dict:
        """The specs, normalised; `SearchSpace(space.to_dict())` is the same space."""
        return {name: ({k: d.to_spec() for k, d in domain.items()} if isinstance(domain, dict) else domain.to_spec())
                for name, domain in self.domains.items()}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Samples every dimension through Optuna's `trial.suggest_*`; flat names
        (`sparsity`, `student.width`, `layer_sparsity.dense1`)."""
        params = {}
        for name, domain in self.domains.items():
            if isinstance(domain, dict):
                for key, sub in domain.items():
                    params[f"{name}.{key}"] = sub.suggest(trial, f"{name}.{key}")
            else:
                params[name] = domain.suggest(trial, name)
        return params

    def steps(self, params: Mapping[str, Any], context: StepContext) -> list[Step]:
        """The recipe steps that make a trial's model from the trained one, in `DIMENSIONS` order."""
        return [step for name in DIMENSIONS if name in self.domains
                for step in DIMENSIONS[name].steps(name, dict(params), context)]

    def layer_names(self) -> list[str]:
        return sorted(self.domains.get("layer_sparsity", {}))
