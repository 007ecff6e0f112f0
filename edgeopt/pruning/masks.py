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


def global_masks(weights: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """One magnitude threshold across all layers: the smallest `sparsity` of all weights go.

    A layer the threshold would empty keeps its largest-magnitude weight, so no layer
    is left dead (the total then has one zero fewer per such layer).
    """
    flat = np.concatenate([np.abs(w).ravel() for w in weights])
    keep = _keep_mask(flat, _zeros_for(flat.size, sparsity))
    masks, start = [], 0
    for w in weights:
        mask = keep[start : start + w.size].reshape(w.shape).copy()
        if w.size and not mask.any():
            mask.flat[int(np.argmax(np.abs(w)))] = True
        masks.append(mask)
        start += w.size
    return masks


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
