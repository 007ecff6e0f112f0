"""`sparsity_report`: per-layer and kernel sparsity, and what share of the whole model that is."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt import ConstantSparsity, Pruning, sparsity_report
from tests.conftest import FLAVOURS


def lstm_classifier(flavour):
    """Most parameters sit in the LSTM, which pruning does not select."""
    from edgeopt._keras import keras_module

    k = keras_module(flavour)
    k.utils.set_random_seed(0)
    return k.Sequential([k.Input((12, 8)), k.layers.LSTM(32, name="lstm"), k.layers.Dense(10, name="logits")])


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_report_says_which_share_of_the_model_the_kernels_are(flavour):
    model = lstm_classifier(flavour)
    x = np.random.default_rng(0).standard_normal((16, 12, 8)).astype("float32")
    y = np.arange(16) % 10
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, verbose=0, callbacks=[Pruning(ConstantSparsity(0.5), frequency=1)])
    report = sparsity_report(model)
    lstm = 4 * 32 * (8 + 32 + 1)  # the LSTM's kernel, recurrent kernel and bias
    dense = 32 * 10
    assert [(l.name, l.params) for l in report.layers] == [("logits", dense)]
    assert report.sparsity == 0.5
    assert report.model_params == lstm + dense + 10 == model.count_params()
    assert report.covered_fraction == pytest.approx(dense / (lstm + dense + 10))
    zeros = sum(int(np.count_nonzero(w == 0)) for w in model.get_weights())
    assert report.model_zeros == zeros and report.model_sparsity == pytest.approx(zeros / report.model_params)
    assert report.model_sparsity < 0.1  # 50 % of under 6 % is not "50 % sparse"
    text = str(report)
    assert f"These kernels hold {report.covered_fraction:.1%} of all {report.model_params} parameters" in text
    assert f"the whole model is {report.model_sparsity:.1%} sparse" in text
    data = report.to_dict()
    assert data["covered_fraction"] == report.covered_fraction and data["model_sparsity"] == report.model_sparsity
    assert data["model_params"] == report.model_params and data["sparsity"] == 0.5


def test_every_weight_of_the_model_counts_once(keras3_model):
    report = sparsity_report(keras3_model)
    assert report.model_params == keras3_model.count_params()  # BatchNorm's moving statistics included
    assert report.covered_fraction == pytest.approx(report.prunable_params / keras3_model.count_params())
    assert 0.9 < report.covered_fraction < 1  # biases (and nothing else) are outside the kernels
