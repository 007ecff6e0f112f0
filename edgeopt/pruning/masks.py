"""Magnitude masks: unstructured (per layer or one global threshold) and N:M."""

from __future__ import annotations

import re

import numpy as np

from edgeopt.errors import ConfigError


def parse_granularity(granularity: str) -> tuple[int, int] | None:
    """`"unstructured"` -> None; `"2:4"` -> (2, 4)."""
    if granularity == "unstructured":
        return None
    match = re.fullmatch(r"(\d+):(\d+)", str(granularity))
    if not match:
        raise ConfigError(f"Unknown granularity. Received: granularity={granularity!r}. "
                          "Use 'unstructured' or 'N:M' such as '2:4'.")
    n, m = int(match.group(1)), int(match.group(2))
    if not 0 < n < m:
        raise ConfigError(f"N:M sparsity needs 0 < N < M. Received: granularity={granularity!r} (N={n}, M={m}). "
                          "Keep N of every M weights, e.g. '2:4'.")
    return n, m


def _zeros_for(size: int, sparsity: float) -> int:
    """How many weights to zero, counted as tfmot counts the ones it keeps.

    tfmot keeps `max(round(size * (1 - sparsity)), 1)` weights (float32, half to even),
    so a kernel is never pruned to all zeros: `Dense(1)` with 2 inputs at 0.8 keeps one
    weight rather than becoming a dead layer.
    """
    if size <= 0:
        return 0
    kept = np.round(np.float32(size) * (np.float32(1.0) - np.float32(sparsity)))
    return size - max(int(kept), 1)


def _keep_mask(magnitudes: np.ndarray, zeros: int) -> np.ndarray:
    """Mask that zeroes exactly the `zeros` smallest magnitudes.

    Deliberately unlike tfmot, which keeps every weight tied with its threshold (so a
    kernel with many equal magnitudes ends up less sparse than asked): here exactly
    `zeros` weights go, ties broken by position.
    """
    mask = np.ones(magnitudes.size, dtype=bool)
    if zeros > 0:
        mask[np.argpartition(magnitudes.ravel(), zeros - 1)[:zeros]] = False
    return mask.reshape(magnitudes.shape)


def layer_masks(weights: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """Each layer pruned to `sparsity` by its own magnitudes (at least one weight kept)."""
    return [_keep_mask(np.abs(w), _zeros_for(w.size, sparsity)) for w in weights]


def max_layer_sparsity(sparsity: float) -> float:
    """The most any one layer is pruned under a global threshold aiming at `sparsity`:
    halfway from the target to 1 (0.8 -> 0.9, 0.9 -> 0.95), so each layer keeps at
    least half the density the target leaves on average."""
    return sparsity + (1.0 - sparsity) / 2.0


def global_masks(weights: list[np.ndarray], sparsity: float, *, cap: float | None = None) -> list[np.ndarray]:
    """One magnitude threshold across all layers: the smallest `sparsity` of all weights go.

    No layer is pruned beyond `cap` (default: `max_layer_sparsity(sparsity)`): a layer
    the threshold would prune further keeps its largest `1 - cap` of weights (at least
    one), and the threshold is lowered over the other layers until the total is met
    ("water-filling"). Small layers with large weights, such as a first convolution or
    a classifier, are thus pruned least, and none is left dead.
    """
    cap = max_layer_sparsity(sparsity) if cap is None else cap
    sizes = [w.size for w in weights]
    limits = [_zeros_for(n, cap) for n in sizes]  # most zeros each layer may take
    target = _zeros_for(sum(sizes), sparsity)
    zeros = [0] * len(weights)
    fixed: set[int] = set()
    while True:  # each pass fixes at least one more layer at its limit, or ends
        free = [i for i in range(len(weights)) if i not in fixed]
        budget = target - sum(limits[i] for i in fixed)
        if not free or budget <= 0:
            break
        flat = np.concatenate([np.abs(weights[i]).ravel() for i in free])
        keep = _keep_mask(flat, min(budget, flat.size))
        counts, start = {}, 0
        for i in free:
            counts[i] = sizes[i] - int(np.count_nonzero(keep[start : start + sizes[i]]))
            start += sizes[i]
        over = [i for i in free if counts[i] > limits[i]]
        if not over:
            for i in free:
                zeros[i] = counts[i]
            break
        fixed.update(over)
    for i in fixed:
        zeros[i] = limits[i]
    return [_keep_mask(np.abs(w), z) for w, z in zip(weights, zeros)]


def n_m_mask(weight: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the `n` largest of every `m` consecutive weights along the input-channel axis.

    The input-channel axis is the second to last (`(in, out)` Dense, `(k, in, out)`
    Conv1D, `(kh, kw, in, out)` Conv2D): the layout sparse tensor cores and XNNPACK use.
    """
    moved = np.moveaxis(np.abs(weight), -2, -1)  # (..., out, in)
    in_dim = moved.shape[-1]
    if in_dim % m:
        raise ConfigError(f"N:M needs the input channels to be a multiple of M. Received: {in_dim} input "
                          f"channels with M={m}. Exclude this layer or pick another M.")
    groups = moved.reshape(*moved.shape[:-1], in_dim // m, m)
    order = np.argsort(groups, axis=-1)  # ascending magnitude
    keep = np.ones_like(groups, dtype=bool)
    np.put_along_axis(keep, order[..., : m - n], False, axis=-1)
    return np.moveaxis(keep.reshape(moved.shape), -1, -2)
