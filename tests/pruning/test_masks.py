"""Mask computation: exact counts, global thresholds, N:M groups."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt import ConfigError
from edgeopt.pruning.masks import global_masks, layer_masks, n_m_mask, parse_granularity


def test_layer_masks_prune_exactly_the_smallest():
    w = np.random.default_rng(0).standard_normal((40, 25))
    (mask,) = layer_masks([w], 0.8)
    assert mask.sum() == 200
    assert np.abs(w[~mask]).max() <= np.abs(w[mask]).min()


def test_global_masks_use_one_threshold():
    small, large = np.full((10, 10), 0.01), np.full((10, 10), 1.0)
    masks = global_masks([small, large], 0.5)
    assert masks[0].sum() == 1 and masks[1].sum() == 100  # the threshold empties `small`: it keeps one weight
    masks = layer_masks([small, large], 0.5)
    assert masks[0].sum() == masks[1].sum() == 50


def test_n_m_along_input_channels():
    w = np.random.default_rng(1).standard_normal((3, 3, 8, 6))  # (kh, kw, in, out)
    mask = n_m_mask(w, 2, 4)
    groups = np.moveaxis(mask, 2, -1).reshape(3, 3, 6, 2, 4)
    assert (groups.sum(axis=-1) == 2).all()
    kept = np.abs(np.moveaxis(w, 2, -1).reshape(3, 3, 6, 2, 4))
    assert (np.sort(kept, -1)[..., 2:].min(-1) >= np.where(np.moveaxis(mask, 2, -1).reshape(3, 3, 6, 2, 4), 0, kept).max(-1)).all()


@pytest.mark.parametrize("text, message", [("4:4", "0 < N < M"), ("3:2", "N=3, M=2"), ("blocks", "Unknown granularity")])
def test_bad_granularity(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_granularity(text)
    assert parse_granularity("2:4") == (2, 4) and parse_granularity("unstructured") is None


@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.99, 0.999999])
def test_a_kernel_always_keeps_a_weight(sparsity):
    rng = np.random.default_rng(2)
    for shape in [(2, 1), (1, 1), (3, 1), (1, 4)]:
        w = rng.standard_normal(shape)
        (mask,) = layer_masks([w], sparsity)
        assert mask.sum() >= 1 and mask[np.unravel_index(np.abs(w).argmax(), shape)], (shape, sparsity)
    (dead, alive) = global_masks([np.full((2, 1), 1e-6), rng.standard_normal((50, 10))], sparsity)
    assert dead.sum() == 1 and alive.sum() >= 1


def test_counts_round_half_to_even_like_tfmot():
    w = np.random.default_rng(3).standard_normal((5, 3))
    (mask,) = layer_masks([w], 0.5)  # 15 * 0.5 = 7.5 kept: tfmot rounds to 8
    assert mask.sum() == 8
