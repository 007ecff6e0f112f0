"""Copying a model layer by layer, for the techniques that return a new model.

`keras.models.clone_model` (and tf_keras') rebuilds a model from its layers' configs.
That works for functional and Sequential models; a subclassed model (layers made in
`__init__`, the graph in Python `call`) has no graph to rebuild, and a layer whose
`get_config` does not describe its constructor cannot be rebuilt. Keras then fails deep
inside its serialization with a `NotImplementedError` or `ValueError`; here that becomes
one `ConfigError` naming the model and the way out.
"""

from __future__ import annotations

from typing import Any, Callable

from edgeopt import _keras
from edgeopt.errors import ConfigError


def is_graph_model(model: Any) -> bool:
    """True for a functional or Sequential model (of either Keras), False for a subclassed one."""
    for cls in type(model).__mro__:
        if cls.__name__ in ("Functional", "Sequential") and cls.__module__.split(".")[0] in ("keras", "tf_keras"):
            return True
    return bool(getattr(model, "_is_graph_network", False))


def _describe(model: Any) -> str:
    return f"a {type(model).__module__}.{type(model).__qualname__} model named {getattr(model, 'name', '?')!r}"


def require_graph_model(model: Any, what: str) -> None:
    """Raises `ConfigError` unless `model` is functional or Sequential.

    Args:
        model: the caller's model.
        what: the technique, for the message (e.g. `"factorize"`).
    """
    if not is_graph_model(model):
        raise ConfigError(
            f"{what} rebuilds the model layer by layer, which only works for functional and Sequential models. "
            f"Received: {_describe(model)}, a subclassed model. Build the same layers with the functional API "
            "(call them on a `keras.Input` and wrap with `keras.Model(inputs, outputs)`) or as a `keras.Sequential`, "
            "copy the weights over with `set_weights`, and pass that model.")


def clone(model: Any, what: str, *, clone_function: Callable[[Any], Any] | None = None,
          weights: bool = True) -> Any:
    """A copy of `model` with new layer objects (and, with `weights`, the same weights).

    Keras 3 can copy a subclassed model whose `get_config` describes its constructor
    (no `clone_function` then); anything else that cannot be copied is a `ConfigError`.

    Args:
        model: the caller's model; not modified.
        what: the technique, for the message.
        clone_function: as in `clone_model`: maps each layer to its copy. Needs a
            functional or Sequential model. Defaults to `None` (a plain copy).
        weights: copy the weights over. Defaults to `True`.

    Raises:
        ConfigError: the model is subclassed (where that cannot work), or one of its
            layers cannot be rebuilt from its config.
    """
    flavour = _keras.flavour_of(model)
    module = _keras.keras_module(flavour)
    if clone_function is not None or flavour is _keras.Flavour.TF_KERAS:
        require_graph_model(model, what)
    try:
        if clone_function is None:
            copy = module.models.clone_model(model)
        else:
            copy = module.models.clone_model(model, clone_function=clone_function)
    except NotImplementedError as exc:
        raise _not_copyable(model, what, exc) from exc
    except (TypeError, ValueError) as exc:
        if is_graph_model(model):
            raise  # not a config problem of the user's model: a bug, keep its traceback
        raise _not_copyable(model, what, exc) from exc
    if weights:
        copy.set_weights(model.get_weights())
    return copy


def _not_copyable(model: Any, what: str, exc: BaseException) -> ConfigError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = " ".join(lines[:3]) or type(exc).__name__
    return ConfigError(
        f"{what} needs a copy of the model, and Keras cannot rebuild it from its config: {reason} "
        f"Received: {_describe(model)}. Give every custom layer or model a `get_config()` that returns its "
        "constructor's arguments, or build the model with the functional API or as a `keras.Sequential`.")
