"""Which layers `quantize_aware` quantizes, decided the same way for both backends
(`qat.keras3` for Keras 3, `qat.tfmot_backend` for tf_keras): the names and types a
call selects must exist in the model, a layer is chosen when it matches both, and a
layer that cannot be quantized is an error unless `skip` names it (or is `True`).

Each backend says what a layer's name and types are (Keras 3 counts an op's kind too,
tfmot the layer class) and which layers it cannot quantize; the rules are here.
"""

from __future__ import annotations

from typing import Collection, Iterable, Sequence

from edgeopt.errors import ConfigError


def skip_names(skip: Sequence[str] | bool | None) -> set[str]:
    """The layer names `skip` lists (none for `None` or `True`)."""
    return set(skip) if isinstance(skip, (list, tuple, set)) else set()


def check_selection(names: Iterable[str], types: Iterable[str], *, layers: Sequence[str] | None,
                    layer_types: Sequence[str] | None, skip: Sequence[str] | bool | None) -> None:
    """Every name in `layers` and `skip` and every type in `layer_types` is in the model.

    Args:
        names: every layer name in the model.
        types: every layer type in the model.
        layers, layer_types, skip: `quantize_aware`'s arguments.

    Raises:
        ConfigError: naming what the model lacks and what it has.
    """
    names, types = set(names), set(types)
    for what, given in (("layers", layers), ("skip", skip_names(skip))):
        unknown = sorted(set(given or ()) - names)
        if unknown:
            raise ConfigError(f"No such layers to {'quantize' if what == 'layers' else 'skip'}. Received: "
                              f"{what}={unknown}. Layers in the model: {sorted(names)[:40]}.")
    unknown = sorted(set(layer_types or ()) - types)
    if unknown:
        raise ConfigError(f"No layers of these types to quantize. Received: layer_types={unknown}. "
                          f"Types in the model: {sorted(types)}.")


def is_selected(name: str, types: Collection[str], *, layers: Sequence[str] | None,
                layer_types: Sequence[str] | None) -> bool:
    """Whether `layers` and `layer_types` select the layer `name` of `types` (None selects all)."""
    return (layers is None or name in layers) and (layer_types is None or bool(set(types) & set(layer_types)))


def refused(unsupported: Iterable[str], skip: Sequence[str] | bool | None) -> list[str]:
    """The layers that cannot be quantized and that `skip` does not leave in float, in
    the order of `unsupported`."""
    skipped = skip_names(skip)
    return [] if skip is True else [n for n in dict.fromkeys(unsupported) if n not in skipped]
