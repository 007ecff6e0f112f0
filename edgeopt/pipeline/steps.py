"""The recipe steps: one registry, each step name mapped onto the public callable it sets.

A step's keys are that callable's keyword arguments (less the model it is given, and the
few a recipe has no business setting) plus the pipeline's own keys (`PIPELINE_KEYS`,
declared once with their defaults). Defaults are the callable's, read from its signature
with `inspect.signature`; values are checked by the callable's own checks — by
constructing it (a callback such as `Pruning`) or by calling the function it checks its
arguments with before touching the model (`check_clustering_arguments`, ...) — so a
recipe and the Python API cannot drift apart. Adding a technique is one line in `STEPS`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from edgeopt._callables import resolve_callable
from edgeopt.errors import ConfigError
from edgeopt.pipeline._checks import check_keys, mapping, model_spec, positive, where


def _optional_positive(value, path, *keys):
    """`None` (the pipeline decides) or a positive number."""
    return value if value is None else positive(value, float, path, *keys)


def _positive_integer(value, path, *keys):
    return positive(value, int, path, *keys)


def _boolean(value, path, *keys):
    if not isinstance(value, bool):
        raise ConfigError(f"{where(path, *keys)} must be true or false. Received: {value!r}.")
    return value


@dataclass(frozen=True)
class PipelineKey:
    """A step key that is the pipeline's, not the callable's: its default and its check."""

    default: Any
    check: Callable[..., Any]
    help: str


# The pipeline's own step keys. `epochs` belongs to every step; a `Step` names the others it takes.
PIPELINE_KEYS: dict[str, PipelineKey] = {
    "epochs": PipelineKey(3, _positive_integer, "epochs of fine-tuning after the step"),
    "learning_rate": PipelineKey(None, _optional_positive,
                                 "fine-tuning learning rate; None: a tenth of train.learning_rate"),
    "iterations": PipelineKey(1, _positive_integer,
                              "prune -> fine-tune rounds; each removes an equal share of what is left"),
    "distill": PipelineKey(True, _boolean, "fine-tune by distilling from the model the step started from"),
}
# A pruning schedule as a recipe writes it: {polynomial_decay: {...}} -> edgeopt.PolynomialDecay(...).
SCHEDULES = {"constant_sparsity": "ConstantSparsity", "polynomial_decay": "PolynomialDecay"}


@dataclass(frozen=True)
class Step:
    """A recipe step: the public callable it sets and how the pipeline hands it the model.

    Args:
        target: the public callable, or its `package.module:name`.
        check: the function `target` checks its arguments with before it touches a model
            (its parameters are a subset of `target`'s), or its `package.module:name`.
            Defaults to `None`: validation constructs `target` itself (a callback).
        model: the parameter of `target` that receives the model being optimized (not a
            recipe key). Defaults to `"model"`.
        hidden: parameters of `target` a recipe does not set. Defaults to `()`.
        pipeline: pipeline-only keys the step takes besides `epochs` (from `PIPELINE_KEYS`).
            Defaults to `()`.
    """

    target: str | Callable
    check: str | Callable | None = None
    model: str = "model"
    hidden: tuple[str, ...] = ()
    pipeline: tuple[str, ...] = ()

    def callable(self) -> Callable:
        return _resolve(self.target)

    def takes_model(self) -> bool:
        """Whether the callable is given the model (a transform) or not (a callback)."""
        return self.model in inspect.signature(self.callable()).parameters

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The callable's parameters a recipe sets, by name."""
        return {name: p for name, p in inspect.signature(self.callable()).parameters.items()
                if name != self.model and name not in self.hidden
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)}

    def pipeline_keys(self) -> dict[str, PipelineKey]:
        return {name: PIPELINE_KEYS[name] for name in ("epochs", *self.pipeline)}

    def keys(self) -> set[str]:
        return set(self.parameters()) | set(self.pipeline_keys())

    def defaults(self) -> dict[str, Any]:
        """Every key's default: the callable's (from its signature) and the pipeline's."""
        out = {name: p.default for name, p in self.parameters().items() if p.default is not p.empty}
        return {**out, **{name: key.default for name, key in self.pipeline_keys().items()}}

    def arguments(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments `settings` give the callable (pipeline keys dropped, a
        schedule built); unset ones are left out, so the callable's defaults apply."""
        out = {k: v for k, v in settings.items() if k not in PIPELINE_KEYS}
        if "schedule" in out:
            out["schedule"] = build_schedule(out["schedule"])
        return out


def _resolve(target):
    return resolve_callable(target, "recipe step") if isinstance(target, str) else target


def _name(spec: Step) -> str:
    return getattr(spec.callable(), "__name__", str(spec.target))


# Step name -> the public callable it sets. One line per technique.
STEPS: dict[str, Step] = {
    "pruning": Step("edgeopt.pruning.callback:Pruning", hidden=("hold", "verbose"), pipeline=("distill",)),
    "clustering": Step("edgeopt.clustering.api:cluster_weights", "edgeopt.clustering.api:check_clustering_arguments"),
    "lowrank": Step("edgeopt.lowrank.svd:factorize", "edgeopt.lowrank.svd:check_factorize_arguments",
                    hidden=("return_plan",)),
    "qat": Step("edgeopt.qat.api:quantize_aware", "edgeopt.qat.api:check_qat_arguments", pipeline=("learning_rate",)),
    "distill": Step("edgeopt.distill.api:Distiller", "edgeopt.distill.api:check_distill_arguments", model="teacher"),
    "channel_pruning": Step("edgeopt.channels.prune:prune_channels", "edgeopt.channels.prune:check_channel_arguments",
                            hidden=("data", "return_plan"), pipeline=("iterations", "distill")),
}


def build_schedule(value: dict) -> Any:
    """`{polynomial_decay: {...}}` (checked by `parse_step`) -> the `PruningSchedule`."""
    from edgeopt.pruning import schedule as schedules

    ((name, args),) = value.items()
    return getattr(schedules, SCHEDULES[name])(**(args or {}))


def _parse_value(key: str, value: Any, path, *keys) -> Any:
    """A value that a recipe writes as data rather than as the argument itself, checked
    and normalized (it stays plain data: recipes are hashed and written to manifests)."""
    if key == "schedule":
        schedule = mapping(value, path, *keys)
        if len(schedule) != 1 or next(iter(schedule)) not in SCHEDULES:
            raise ConfigError(f"{where(path, *keys)} must be one of {sorted(SCHEDULES)}. Received: {schedule!r}.")
        mapping(next(iter(schedule.values())), path, *keys, next(iter(schedule)))
        return value
    if key == "student":  # a model section, built when the step runs
        return model_spec(value, path, *keys)
    return value


def parse_step(kind: str, settings: Any, path, variant) -> dict:
    """A step's settings, checked by the callable's own checks, with the pipeline's
    defaults filled in (the callable's stay unset: it applies them itself).

    Raises:
        ConfigError: naming the file, the variant, the step and the key.
    """
    spec = STEPS[kind]
    settings = dict(mapping(settings, path, "variants", variant, kind))
    check_keys(settings, spec.keys(), path, "variants", variant, kind)
    for name, key in spec.pipeline_keys().items():
        if key.default is not None:  # None means "decided when the step runs"; not written, so hashes stay
            settings.setdefault(name, key.default)
        if name in settings:
            key.check(settings[name], path, "variants", variant, kind, name)
    for name, parameter in spec.parameters().items():
        if name in settings:
            settings[name] = _parse_value(name, settings[name], path, "variants", variant, kind, name)
        elif parameter.default is parameter.empty:
            raise ConfigError(f"{where(path, 'variants', variant, kind, name)} is required. Received: nothing. "
                              f"Add {name}: ... ({_name(spec)} has no default for it).")
    _validate(spec, settings, where(path, "variants", variant, kind))
    return settings


def _validate(spec: Step, settings: dict, label: str) -> None:
    """Runs the callable's own checks on `settings`; their errors are prefixed with `label`."""
    check = _resolve(spec.check) if spec.check is not None else spec.callable()
    try:
        arguments = spec.arguments(settings)
        if spec.check is None:
            check(**arguments)
            return
        bound = inspect.signature(spec.callable()).bind_partial(**arguments)
        bound.apply_defaults()
        wanted = inspect.signature(check).parameters
        check(**{k: v for k, v in bound.arguments.items() if k in wanted})
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{label}: {exc}. Check the argument names and values.") from None

