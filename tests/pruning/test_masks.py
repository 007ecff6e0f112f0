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
    assert masks[0].sum() == 0 and masks[1].sum() == 100
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
