"""Built-in data: scikit-learn's bundled digits (no download), split reproducibly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Splits:
    """Train / validation / test arrays; images are (N, 8, 8, 1) float32 in [0, 1]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_splits(*, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2) -> Splits:
    """The 1,797 8×8 digits of scikit-learn, shuffled with `seed` and split three ways.

    Args:
        seed: shuffling seed. Defaults to `0`.
        val_fraction: share of samples for validation. Defaults to `0.1`.
        test_fraction: share of samples for the test split. Defaults to `0.2`.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_test = int(len(x) * test_fraction)
    n_val = int(len(x) * val_fraction)
    return Splits(
        x_train=x[n_test + n_val :], y_train=y[n_test + n_val :],
        x_val=x[n_test : n_test + n_val], y_val=y[n_test : n_test + n_val],
        x_test=x[:n_test], y_test=y[:n_test],
    )
