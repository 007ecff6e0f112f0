"""How important each channel of a group is: kernel magnitude, BatchNorm gamma, or Taylor.

Scores are summed over every layer of a group, so a residual stage is ranked by all
its producers together. A higher score means a channel is kept first.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np

from edgeopt import _keras
from edgeopt._checks import parse_choice
from edgeopt._compat import StrEnum
from edgeopt.channels.graph import ChannelGraph, Space
from edgeopt.errors import ConfigError


class Criterion(StrEnum):
    """How channels are ranked.

    * `l1`: sum of |w| of each output channel over the group's producer kernels.
    * `l2`: L2 norm of each output channel's kernel slice, summed over producers.
    * `bn_gamma`: |gamma| of the BatchNormalization layers in the group (Liu et al.,
      "Network Slimming", 2017); groups without BatchNorm fall back to `l1`.
    * `taylor`: |Σ activation × gradient of the loss| per batch, summed over batches
      (Molchanov et al., 2017); needs `data`.
    """

    L1 = "l1"
    L2 = "l2"
    BN_GAMMA = "bn_gamma"
    TAYLOR = "taylor"


def warn_user(message: str) -> None:
    """`warnings.warn` pointing at the first caller outside `edgeopt.channels`."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("edgeopt.channels"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def parse_criterion(criterion: Any) -> Criterion:
    return parse_choice(Criterion, criterion, argument="criterion")


def positions(graph: ChannelGraph, space: Space) -> list[tuple[int, np.ndarray]]:
    """(group index, positions along the axis, shape (tile, channels)) for each atom of `space`."""
    inner = sum(graph.sizes[a] for a in space.atoms)
    found, offset = [], 0
    for atom in space.atoms:
        size = graph.sizes[atom]
        found.append((graph.group_of(atom), offset + np.arange(size)[None, :] + inner * np.arange(space.tile)[:, None]))
        offset += size
    return found


def group_scores(graph: ChannelGraph, criterion: Criterion | str, *, data: Any = None,
                 batch_size: int = 32) -> dict[int, np.ndarray]:
    """One score per channel for every prunable group (index -> array of its size)."""
    criterion = parse_criterion(criterion)
    scores = {g.index: np.zeros(g.size) for g in graph.groups if g.prunable}
    if criterion is Criterion.TAYLOR:
        if data is None:
            raise ConfigError("The taylor criterion needs data. Received: data=None. Pass data=(x, y) "
                              "(labelled samples) or data=x, e.g. data=(x_train[:256], y_train[:256]).")
        _taylor(graph, scores, data, batch_size)
        return scores
    if criterion is Criterion.BN_GAMMA:
        seen = set()
        for role in graph.roles.values():
            if role.kind != "BatchNormalization" or not role.layer.get_config().get("scale", True):
                continue
            gamma = np.abs(role.layer.get_weights()[0])
            for index, pos in positions(graph, role.space):
                if index in scores:
                    scores[index] += gamma[pos].sum(axis=0)
                    seen.add(index)
        missing = [i for i in scores if i not in seen]
        if missing:
            warn_user("criterion 'bn_gamma' found no BatchNormalization in groups "
                      f"{[graph.groups[i].name for i in missing]}; ranking them by 'l1' instead.")
        fallback = _magnitude(graph, {i: scores[i] for i in missing}, Criterion.L1)
        scores.update(fallback)
        return scores
    return _magnitude(graph, scores, criterion)


def _magnitude(graph: ChannelGraph, scores: dict[int, np.ndarray], criterion: Criterion) -> dict[int, np.ndarray]:
    for role in graph.roles.values():
        if role.out_atom is None or graph.group_of(role.out_atom) not in scores:
            continue
        weights = role.layer.get_weights()
        kernel = weights[1] if role.kind.startswith("Separable") else weights[0]
        kernel = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
        value = np.abs(kernel).sum(axis=0) if criterion is Criterion.L1 else np.sqrt((kernel**2).sum(axis=0))
        scores[graph.group_of(role.out_atom)] += value
    return scores


def _split(data: Any) -> tuple[Any, Any]:
    x, y = data if isinstance(data, tuple) and len(data) == 2 else (data, None)
    xs = [np.asarray(a) for a in x] if isinstance(x, (list, tuple)) else [np.asarray(x)]
    if not xs or any(a.ndim == 0 for a in xs) or len({len(a) for a in xs}) != 1 or len(xs[0]) == 0:
        raise ConfigError(f"data must be x or (x, y) with x an array (or a list of arrays, one per model input). "
                          f"Received: {type(x).__name__}. Pass e.g. data=(x_train[:256], y_train[:256]).")
    return (xs if isinstance(x, (list, tuple)) else xs[0]), (None if y is None else np.asarray(y))


def _variable(layer: Any, name: str) -> Any:
    import tensorflow as tf

    variable = getattr(layer, name)
    return variable if isinstance(variable, tf.Variable) else variable._value  # Keras 3 wraps a tf.Variable


def _default_loss(k: Any, pred: Any, y: Any) -> Any:
    import tensorflow as tf

    if isinstance(pred, (list, tuple)):
        ys = list(y) if isinstance(y, (list, tuple)) else [None] * len(pred)
        return tf.add_n([_default_loss(k, p, t) for p, t in zip(pred, ys)])
    if pred.shape.rank == 2 and pred.shape[-1] > 1:
        values = pred.numpy()
        probabilities = bool(np.all(values >= 0) and np.allclose(values.sum(axis=1), 1, atol=1e-3))
        if y is None:
            labels = values.argmax(axis=1)  # the model's own predictions stand in for labels
        else:
            labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] == pred.shape[-1] else y.reshape(-1)
        return tf.reduce_mean(k.losses.sparse_categorical_crossentropy(labels, pred, from_logits=not probabilities))
    if y is None:
        return 0.5 * tf.reduce_mean(tf.square(pred))
    return tf.reduce_mean(tf.square(pred - tf.cast(y.reshape(pred.shape), pred.dtype)))


def _loss(model: Any, k: Any, pred: Any, y: Any) -> Any:
    import tensorflow as tf

    compiled = getattr(model, "loss", None)
    if y is not None and compiled is not None and not isinstance(compiled, (dict, list, tuple)):
        function = k.losses.get(compiled) if isinstance(compiled, str) else compiled
        return tf.reduce_mean(function(y, pred))
    return _default_loss(k, pred, y)


def _taylor(graph: ChannelGraph, scores: dict[int, np.ndarray], data: Any, batch_size: int) -> None:
    """Σ activation × ∂loss/∂activation per channel, read off the consumers' kernels.

    A channel enters the rest of the network only through the kernels that read it
    (Dense/Conv/Separable; everything else in a group passes channels through), and
    each is linear in its input, so Σ w·∂L/∂w over a channel's input slice of the
    kernel equals Σ a·∂L/∂a over that channel's activations a. No graph surgery is
    needed, in either Keras.
    """
    import tensorflow as tf

    model = graph.model
    k = _keras.keras_module(graph.flavour)
    x, y = _split(data)
    n = len(x[0]) if isinstance(x, list) else len(x)
    if y is not None and len(y) != n:
        raise ConfigError(f"data has {n} samples but {len(y)} labels. Received: data=(x, y) of lengths {n} and "
                          f"{len(y)}. Pass one label per sample.")
    consumers = [r for r in graph.roles.values() if r.in_space is not None
                 and any(i in scores for i, _ in positions(graph, r.in_space))]
    variables = [_variable(r.layer, "depthwise_kernel" if r.kind.startswith("Separable") else "kernel")
                 for r in consumers]
    for start in range(0, n, batch_size):
        xb = [a[start:start + batch_size] for a in x] if isinstance(x, list) else x[start:start + batch_size]
        yb = None if y is None else y[start:start + batch_size]
        try:
            with tf.GradientTape() as tape:
                for variable in variables:
                    tape.watch(variable)
                pred = model(xb, training=False)
                loss = _loss(model, k, pred, yb)
            grads = tape.gradient(loss, variables)
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as exc:
            shapes = [a.shape for a in x] if isinstance(x, list) else x.shape
            raise ConfigError(
                f"data does not fit the model. Received: x of shape {shapes}"
                f"{'' if y is None else f', y of shape {y.shape}'} for inputs "
                f"{[tuple(t.shape) for t in model.inputs]} ({str(exc).splitlines()[0][:200]}). "
                "Pass data=(x, y) with x shaped like the model's input and one label per sample.") from exc
        batch = {i: np.zeros_like(v) for i, v in scores.items()}
        for role, variable, grad in zip(consumers, variables, grads):
            if grad is None:
                continue
            product = (variable.numpy() * np.asarray(grad)).astype(np.float64)
            per_input = np.moveaxis(product, -2, 0).reshape(product.shape[-2], -1).sum(axis=1)
            for index, pos in positions(graph, role.in_space):
                if index in batch:
                    batch[index] += per_input[pos].sum(axis=0)
        for index, value in batch.items():
            scores[index] += np.abs(value)
