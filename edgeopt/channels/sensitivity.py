"""`channel_sensitivity`: what pruning each channel group alone costs, and ratios from it.

Each prunable group is pruned alone at each ratio (a real smaller model, built as
`prune_channels` builds it) and evaluated; the drop of the metric against the unpruned
model is the group's sensitivity. `SensitivityResult.choose_ratios` then picks
per-group ratios that reach a parameter or MAC budget.
"""

from __future__ import annotations

import glob
import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeopt._files import atomic_write_bytes
from edgeopt.channels.cost import graph_cost
from edgeopt.channels.criteria import Criterion
from edgeopt.channels.prune import ChannelPruner, _check_fraction, kept_count, parse_round_to
from edgeopt.errors import ConfigError

Progress = Callable[[str], None]


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Top-1 accuracy: argmax of class scores, or a 0.5 threshold for one sigmoid output."""
    y_true = np.asarray(y_true)
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        labels = y_true.argmax(axis=1) if y_true.ndim == 2 and y_true.shape[1] > 1 else y_true.reshape(-1)
        return float(np.mean(y_pred.argmax(axis=1) == labels))
    if y_pred.ndim <= 2 and y_pred.size == len(y_true):
        return float(np.mean((y_pred.reshape(-1) > 0.5) == (y_true.reshape(-1) > 0.5)))
    raise ConfigError(f"The default metric (accuracy) needs class scores or one sigmoid output. Received: "
                      f"predictions of shape {y_pred.shape}. Pass metric=my_metric(y_true, y_pred) -> float.")


def _predict(model: Any, x: Any, batch_size: int) -> np.ndarray:
    n = len(x[0]) if isinstance(x, list) else len(x)
    parts = []
    for start in range(0, n, batch_size):
        xb = [a[start:start + batch_size] for a in x] if isinstance(x, list) else x[start:start + batch_size]
        parts.append(np.asarray(model(xb, training=False)))  # eager: no tracing per pruned model
    return np.concatenate(parts)


@dataclass
class SensitivityResult:
    """Per group and ratio: channels kept, the metric, its drop, and the pruned model's cost.

    `rows` hold one dict per (group, ratio); `baseline` is the unpruned model's metric.
    """

    metric: str
    criterion: str
    baseline: float
    ratios: list[float]
    round_to: int
    params: int
    macs: int
    rows: list[dict[str, Any]]
    _pruner: Any = field(default=None, repr=False, compare=False)

    def to_rows(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "criterion": self.criterion, "baseline": self.baseline,
                "ratios": list(self.ratios), "round_to": self.round_to, "params": self.params, "macs": self.macs,
                "rows": self.to_rows()}

    def drop(self, group: str, ratio: float) -> float:
        for row in self.rows:
            if row["group"] == group and math.isclose(row["ratio"], ratio):
                return row["drop"]
        raise KeyError((group, ratio))

    def plot(self, path: str | Path, *, top: int = 12) -> Path:
        """Writes a PNG: metric drop against ratio, one line per group (the `top` most sensitive)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot: no global backend state
        from matplotlib.figure import Figure

        groups = list(dict.fromkeys(row["group"] for row in self.rows))
        worst = max(self.ratios) if self.ratios else 0
        groups.sort(key=lambda g: -self.drop(g, worst))
        figure = Figure(figsize=(7, 4.5), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for group in groups[:top]:
            points = sorted((r["ratio"], r["drop"]) for r in self.rows if r["group"] == group)
            axes.plot([0.0] + [p[0] for p in points], [0.0] + [p[1] for p in points], marker="o", label=group)
        axes.set_xlabel("share of the group's channels removed")
        axes.set_ylabel(f"{self.metric} drop (baseline {self.baseline:.4g})")
        axes.set_title(f"Channel sensitivity ({self.criterion})" + (f", {top} most sensitive of {len(groups)} groups"
                                                                   if len(groups) > top else ""))
        axes.grid(alpha=0.3)
        if groups:
            axes.legend(fontsize=7, loc="upper left")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return atomic_write_bytes(path, buffer.getvalue())

    def choose_ratios(self, target: float, *, by: str = "params") -> dict[str, float]:
        """Per-group ratios that remove a share `target` of the model's params or MACs.

        Greedy on the sensitivity: starting from nothing pruned, it repeatedly moves the
        one group to its next measured ratio that costs the least extra metric drop per
        parameter (or MAC) saved, until the target is met. Groups are treated as
        independent, so the combined drop is only estimated by the sum of single-group drops.

        Args:
            target: share of params/MACs to remove, in (0, 1).
            by: `"params"` or `"macs"`. Defaults to `"params"`.

        Returns:
            `{group name: ratio}`, ready for `prune_channels(model, ratios, criterion=...)`
            (with this result's criterion and `round_to`).
        """
        target = _check_fraction(target, "target")
        if by not in ("params", "macs"):
            raise ConfigError(f"by must be 'params' or 'macs'. Received: by={by!r}.")
        if self._pruner is None:
            raise ConfigError("choose_ratios needs the result of channel_sensitivity in this process. Received: a "
                              "result without its model. Run channel_sensitivity again.")
        graph = self._pruner.graph
        groups = {g.name: g for g in graph.groups if g.prunable}
        names = [n for n in dict.fromkeys(row["group"] for row in self.rows) if n in groups]
        state = {name: 0.0 for name in names}

        def cost(ratios: dict[str, float]) -> int:
            counts = {g.index: max(g.size, 0) for g in graph.groups}
            for name, ratio in ratios.items():
                counts[groups[name].index] = kept_count(groups[name].size, ratio, self.round_to) if ratio else \
                    groups[name].size
            return getattr(graph_cost(graph, counts), by)

        current = full = cost(state)
        goal = full * (1 - target)
        while current > goal:
            best = None
            for name in names:
                higher = [r for r in sorted(self.ratios) if r > state[name]]
                if not higher:
                    continue
                trial = cost({**state, name: higher[0]})
                gain = current - trial
                if gain <= 0:
                    continue
                extra = max(self.drop(name, higher[0]) - (self.drop(name, state[name]) if state[name] else 0.0), 0.0)
                key = (extra / gain, -gain)
                if best is None or key < best[0]:
                    best = (key, name, higher[0], trial)
            if best is None:
                warnings.warn(f"choose_ratios: the measured ratios remove at most {1 - current / full:.1%} of the "
                              f"{by}, short of target={target}; returning the largest ratios.", stacklevel=2)
                break
            _, name, ratio, current = best
            state[name] = ratio
        return {glob.escape(name): ratio for name, ratio in state.items() if ratio > 0}


def channel_sensitivity(model: Any, eval_data: Any, ratios: Sequence[float] = (0.25, 0.5, 0.75), *,
                        criterion: Criterion | str = Criterion.L1, data: Any = None,
                        metric: Callable[[np.ndarray, np.ndarray], float] | None = None, round_to: int = 1,
                        batch_size: int = 256, progress: Progress | None = None) -> SensitivityResult:
    """Prunes each channel group alone at each ratio and measures the metric's drop.

    Example:

    ```python
    result = edgeopt.channel_sensitivity(model, (x_val, y_val), ratios=(0.25, 0.5, 0.75))
    result.plot("sensitivity.png")
    ratios = result.choose_ratios(0.5, by="macs")     # remove half of the MACs
    small = edgeopt.prune_channels(model, ratios)
    ```

    Args:
        model: a functional or Sequential Keras 3 / tf_keras model; not modified.
        eval_data: `(x, y)` to evaluate on.
        ratios: shares of a group's channels to remove, each in [0, 1).
            Defaults to `(0.25, 0.5, 0.75)`.
        criterion: how channels are ranked (as in `prune_channels`). Defaults to `"l1"`.
        data: samples for the `taylor` criterion (as in `prune_channels`). Defaults to `None`.
        metric: `metric(y_true, y_pred) -> float`, higher is better. Defaults to `None`
            (top-1 accuracy).
        round_to: as in `prune_channels`. Defaults to `1`.
        batch_size: evaluation batch size. Defaults to `256`.
        progress: called with one line per group. Defaults to `None`.

    Returns:
        A `SensitivityResult` (`to_rows()`, `to_dict()`, `plot(path)`, `choose_ratios(...)`).
    """
    if isinstance(ratios, (str, bytes)) or not isinstance(ratios, Sequence) or not ratios:
        raise ConfigError(f"ratios must be a non-empty list of numbers in [0, 1). Received: ratios={ratios!r}.")
    ratios = sorted({_check_fraction(r, "ratios[i]") for r in ratios})
    round_to = parse_round_to(round_to)
    if not (isinstance(eval_data, tuple) and len(eval_data) == 2):
        raise ConfigError(f"eval_data must be a pair (x, y). Received: {type(eval_data).__name__}. "
                          "Pass eval_data=(x_val, y_val).")
    x, y = eval_data
    x = [np.asarray(a) for a in x] if isinstance(x, (list, tuple)) else np.asarray(x)
    score = metric or accuracy
    name = getattr(metric, "__name__", "metric") if metric else "accuracy"
    say = progress or (lambda line: None)
    pruner = ChannelPruner(model, criterion=criterion, data=data)
    try:
        baseline = float(score(y, _predict(model, x, batch_size)))
    except (ValueError, TypeError, IndexError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"eval_data does not fit the model. Received: x of shape {np.shape(x)}, y of shape "
                          f"{np.shape(y)} for inputs {[tuple(t.shape) for t in model.inputs]} "
                          f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}). "
                          "Pass eval_data=(x, y) with x shaped like the model's input and one label per sample.") \
            from exc
    full = graph_cost(pruner.graph)
    rows = []
    everything = pruner.keep({})
    for group in [g for g in pruner.graph.groups if g.prunable]:
        for ratio in ratios:
            keep = {**everything, group.index: pruner.keep({group.index: ratio}, round_to)[group.index]}
            pruned = pruner.build(keep) if ratio > 0 else model
            value = float(score(y, _predict(pruned, x, batch_size)))
            cost = graph_cost(pruner.graph, {i: len(k) for i, k in keep.items()})
            rows.append({"group": group.name, "producers": ", ".join(group.producers), "channels": group.size,
                         "ratio": ratio, "kept": len(keep[group.index]), name: value, "drop": baseline - value,
                         "params": cost.params, "macs": cost.macs})
        say(f"{group.name}: " + ", ".join(f"{r['ratio']:.2f} -> {r['drop']:+.4f}" for r in rows[-len(ratios):]))
    return SensitivityResult(name, str(pruner.criterion), baseline, ratios, round_to, full.params, full.macs, rows,
                             _pruner=pruner)
