"""`prune_channels`: structured pruning that returns a physically smaller model.

Whole filters (Conv), units (Dense) and the matching channels of every layer that reads
them (BatchNorm, depthwise kernels, the next kernels' input rows) are removed, so the
exported model has smaller tensors and runs faster on any runtime, with no sparse kernels.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgeopt.channels.criteria import Criterion, group_scores, parse_criterion, warn_user
from edgeopt.channels.graph import ChannelGraph
from edgeopt.channels.rebuild import rebuild
from edgeopt.errors import ConfigError


def _check_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or not 0 <= float(value) < 1:
        raise ConfigError(f"{name} must be a number in [0, 1): the share of channels to remove. "
                          f"Received: {name}={value!r}. Pass e.g. 0.5, or a dict such as {{'conv*': 0.5}}.")
    return float(value)


def parse_ratio(ratio: Any) -> float | dict[str, float]:
    """Validates `ratio`: a share in [0, 1), or `{layer-name pattern: share}`."""
    if isinstance(ratio, Mapping):
        if not ratio:
            raise ConfigError("ratio is an empty dict. Received: ratio={}. "
                              "Pass a number in [0, 1) or a dict such as {'conv*': 0.5}.")
        parsed = {}
        for pattern, value in ratio.items():
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(f"ratio keys must be layer-name patterns (non-empty strings). Received: {pattern!r}. "
                                  "Use fnmatch patterns such as 'conv*' or 'block_[1-3]_*'.")
            parsed[pattern] = _check_fraction(value, f"ratio[{pattern!r}]")
        return parsed
    return _check_fraction(ratio, "ratio")


def parse_round_to(round_to: Any) -> int:
    if isinstance(round_to, bool) or not isinstance(round_to, (int, np.integer)) or round_to < 1:
        raise ConfigError(f"round_to must be a positive integer. Received: round_to={round_to!r}. "
                          "Pass 1 (no rounding) or e.g. 8 to keep channel counts a multiple of 8.")
    return int(round_to)


def kept_count(size: int, ratio: float, round_to: int = 1) -> int:
    """Channels kept out of `size` when a share `ratio` is removed: at least 1, rounded up to `round_to`."""
    keep = size - math.floor(size * ratio + 1e-9)
    keep = math.ceil(keep / round_to) * round_to
    return max(1, min(size, keep))


@dataclass
class GroupPlan:
    """One channel group: its layers, how many channels it had, which were kept, and why not if frozen."""

    name: str
    producers: list[str]
    layers: list[str]
    channels: int
    ratio: float
    kept: list[int]
    frozen: list[str] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return self.channels - len(self.kept)


@dataclass
class ChannelPlan:
    """What `prune_channels` did, group by group."""

    criterion: str
    groups: list[GroupPlan]

    def to_rows(self) -> list[dict[str, Any]]:
        return [{"group": g.name, "producers": ", ".join(g.producers), "channels": g.channels, "kept": len(g.kept),
                 "ratio": g.ratio, "frozen": "; ".join(g.frozen)} for g in self.groups]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChannelPruner:
    """The dependency groups of one model and their channel scores, reused across prunes."""

    def __init__(self, model: Any, *, criterion: Criterion | str = Criterion.L1, data: Any = None,
                 batch_size: int = 32):
        self.criterion = parse_criterion(criterion)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}.")
        self.graph = ChannelGraph(model)
        self._data, self._batch_size = data, batch_size
        self._scores: dict[int, np.ndarray] | None = None

    @property
    def scores(self) -> dict[int, np.ndarray]:
        if self._scores is None:
            self._scores = group_scores(self.graph, self.criterion, data=self._data, batch_size=self._batch_size)
        return self._scores

    def group_ratios(self, ratio: Any) -> dict[int, float]:
        """Ratio per prunable group; warns about frozen groups the ratio asked for."""
        ratio = parse_ratio(ratio)
        asked: dict[int, float] = {}
        used = set()
        for group in self.graph.groups:
            if not group.producers:
                continue
            if isinstance(ratio, float):
                asked[group.index] = ratio
                continue
            hits = [p for p in ratio if any(fnmatch.fnmatchcase(name, p) for name in group.producers)]
            used.update(hits)
            if hits:
                asked[group.index] = ratio[hits[0]]
        if isinstance(ratio, dict):
            unmatched = [p for p in ratio if p not in used]
            producers = [n for g in self.graph.groups for n in g.producers]
            if len(unmatched) == len(ratio):
                raise ConfigError(f"No ratio pattern matches a prunable layer. Received: ratio={ratio}. "
                                  f"Layers whose outputs can be pruned: {producers[:30]}.")
            if unmatched:
                warn_user(f"prune_channels: ratio patterns matched no layer: {unmatched}")
        blocked = [g for g in self.graph.groups if g.index in asked and asked[g.index] > 0 and g.blockers
                   and g.size > 1]
        if blocked:
            blockers = sorted({b for g in blocked for b in g.blockers})
            warn_user(
                f"prune_channels: left {len(blocked)} channel group(s) unpruned ({[g.name for g in blocked]}) "
                f"because these layers cannot be followed: {blockers}. Replace them with built-in Keras layers "
                "to prune those channels.")
        if isinstance(ratio, dict):
            kept_whole = [g for g in self.graph.groups if asked.get(g.index, 0) > 0 and g.frozen and not g.blockers]
            if kept_whole:
                warn_user("prune_channels: the ratio names groups that must keep their channels: " + "; ".join(
                    f"{g.name} ({', '.join(g.frozen)})" for g in kept_whole))
        return {i: r for i, r in asked.items() if self.graph.groups[i].prunable}

    def keep(self, ratios: dict[int, float], round_to: int = 1) -> dict[int, np.ndarray]:
        """Kept channel indices (sorted) of every group; all of them where no ratio is given."""
        keep = {}
        for group in self.graph.groups:
            everything = np.arange(max(group.size, 0))
            ratio = ratios.get(group.index, 0.0)
            if ratio <= 0 or not group.prunable:
                keep[group.index] = everything
                continue
            n = kept_count(group.size, ratio, round_to)
            order = np.argsort(-self.scores[group.index], kind="stable")
            keep[group.index] = np.sort(order[:n])
        return keep

    def build(self, keep: dict[int, np.ndarray]) -> Any:
        return rebuild(self.graph, keep)

    def plan(self, ratios: dict[int, float], keep: dict[int, np.ndarray]) -> ChannelPlan:
        groups = [GroupPlan(g.name, list(g.producers), list(g.layers), g.size, ratios.get(g.index, 0.0),
                            keep[g.index].tolist(), list(g.frozen))
                  for g in self.graph.groups if g.producers]
        return ChannelPlan(str(self.criterion), groups)


def check_channel_arguments(ratio: float | dict[str, float], criterion: Criterion | str = Criterion.L1,
                            round_to: int = 1, batch_size: int = 32) -> None:
    """Raises `ConfigError` for the first `prune_channels` argument it would refuse,
    before any model is touched (recipes call it when they are loaded)."""
    parse_ratio(ratio)
    parse_criterion(criterion)
    parse_round_to(round_to)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1. Received: batch_size={batch_size!r}.")


def prune_channels(model: Any, ratio: float | dict[str, float], *, criterion: Criterion | str = Criterion.L1,
                   data: Any = None, round_to: int = 1, batch_size: int = 32, return_plan: bool = False) -> Any:
    """Returns a new, smaller model with whole channels (filters, units) removed.

    Example:

    ```python
    small = edgeopt.prune_channels(model, 0.5)                      # half of every prunable group
    small = edgeopt.prune_channels(model, {"block_1*": 0.3, "*": 0.5}, criterion="taylor",
                                   data=(x_train[:512], y_train[:512]))
    small.compile(optimizer="adam", loss="sparse_categorical_crossentropy"); small.fit(x, y, epochs=3)
    ```

    Channels are pruned in dependency groups found from the layer graph: a Conv/Dense
    with its BatchNorm and activations, depthwise convolutions (which follow their input),
    every branch of a residual `Add`/`Multiply` (one shared mask), squeeze-excite gates,
    `Concatenate` slices, and the rows of a Dense after `Flatten`/global pooling. Model
    inputs and outputs keep their shapes. Groups touching a layer that cannot be followed
    (custom layers, `Lambda`, ops, nested models, grouped or channels-first convolutions)
    are left whole, with a warning naming those layers. The new model is not compiled.

    Args:
        model: a functional or Sequential Keras 3 / tf_keras model; not modified.
        ratio: share of channels to remove in [0, 1), for every group; or a dict from
            layer-name patterns (fnmatch) to shares: a group takes the share of the first
            pattern (in dict order) that matches one of its producers' names, and groups
            no pattern matches are left whole.
        criterion: how channels are ranked: `l1`, `l2`, `bn_gamma` or `taylor` (see
            `edgeopt.channels.Criterion`). Defaults to `"l1"`.
        data: for `taylor`: `(x, y)` or `x` (then the model's own predictions are the
            labels). The loss is the model's compiled loss, else cross-entropy for
            classifiers and mean squared error otherwise. Defaults to `None`.
        round_to: keep a multiple of this many channels per group (at least 1, never more
            than the group has). Defaults to `1`.
        batch_size: batch size of the `taylor` passes. Defaults to `32`.
        return_plan: also return a `ChannelPlan` (kept channels per group). Defaults to `False`.

    Raises:
        ConfigError: a bad argument, no pattern matching a prunable layer, or a
            subclassed model (only functional and Sequential models are supported).
    """
    check_channel_arguments(ratio, criterion, round_to, batch_size)
    round_to = parse_round_to(round_to)
    pruner = ChannelPruner(model, criterion=criterion, data=data, batch_size=batch_size)
    ratios = pruner.group_ratios(ratio)
    keep = pruner.keep(ratios, round_to)
    if not any(len(keep[i]) < pruner.graph.groups[i].size for i in ratios):
        warn_user("prune_channels: no channel to remove at this ratio (no prunable group, or too few "
                  "channels); returning an unchanged copy.")
    new = pruner.build(keep)
    return (new, pruner.plan(ratios, keep)) if return_plan else new


def round_ratios(model: Any, ratio: float | dict[str, float], iterations: int, *, round_to: int = 1) -> list[dict]:
    """The ratios of `iterations` successive `prune_channels` calls (fine-tuning between
    them) that end at exactly the channel counts one call at `ratio` keeps: each round
    removes an equal share of what is left, rounded to whole channels (and `round_to`),
    the last one landing on the final counts. Each round's ratio is a dict keyed by the
    groups' producer names, for the model that the previous round returns (layer names
    are kept by `prune_channels`). `model` is not modified.

    Written here because neither tfmot nor Keras has iterative structured pruning.
    """
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
        raise ConfigError(f"iterations must be an integer >= 1. Received: iterations={iterations!r}.")
    round_to = parse_round_to(round_to)
    pruner = ChannelPruner(model)
    ratios = pruner.group_ratios(parse_ratio(ratio))
    rounds: list[dict] = [{} for _ in range(iterations)]
    for index, share in ratios.items():
        group = pruner.graph.groups[index]
        final = kept_count(group.size, share, round_to)
        current = group.size
        for i in range(iterations):
            goal = final if i == iterations - 1 else max(final, min(current, math.ceil(
                group.size * (final / group.size) ** ((i + 1) / iterations) / round_to) * round_to))
            for producer in group.producers:
                rounds[i][fnmatch_escape(producer)] = 1.0 - goal / current
            current = goal
    return rounds


def fnmatch_escape(name: str) -> str:
    """`name` as an fnmatch pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)
