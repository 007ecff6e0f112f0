"""Mask computation: exact counts, global thresholds, N:M groups."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt import ConfigError
from edgeopt.pruning.masks import global_masks, layer_masks, max_layer_sparsity, n_m_mask, parse_granularity


def test_layer_masks_prune_exactly_the_smallest():
    w = np.random.default_rng(0).standard_normal((40, 25))
    (mask,) = layer_masks([w], 0.8)
    assert mask.sum() == 200
    assert np.abs(w[~mask]).max() <= np.abs(w[mask]).min()


def test_global_masks_use_one_threshold():
    small, large = np.full((10, 10), 0.01), np.full((10, 10), 1.0)
    masks = global_masks([small, large], 0.5, cap=0.999)  # ~no cap: the threshold empties `small` but for one,
    assert masks[0].sum() == 1 and masks[1].sum() == 99  # and the total is still met
    masks = layer_masks([small, large], 0.5)
    assert masks[0].sum() == masks[1].sum() == 50


def test_global_masks_cap_each_layer_and_still_meet_the_total():
    rng = np.random.default_rng(4)
    first, big, head = 0.01 * rng.standard_normal((3, 3, 1, 16)), rng.standard_normal((512, 64)), rng.standard_normal((64, 10))
    masks = global_masks([first, big, head], 0.8)
    assert max_layer_sparsity(0.8) == pytest.approx(0.9)
    kept = [int(m.sum()) for m in masks]
    assert kept[0] == round(144 * 0.1)  # the tiny-magnitude first layer stops at the 0.9 cap
    total = 144 + 512 * 64 + 640
    assert total - sum(kept) == total - round(total * 0.2)  # exactly the target overall
    for m, w in zip(masks, [first, big, head]):  # within a layer, the largest magnitudes stay
        assert np.abs(w[~m]).max() <= np.abs(w[m]).min()


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
