"""README.md's pruning example ("1. During training"), run as written on a trained model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import edgeopt

README = Path(__file__).resolve().parents[2] / "README.md"


def pruning_example() -> str:
    """The README's first training-stage code block, up to where clustering begins."""
    section = README.read_text().split("### 1. During training", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return code.split("# Weight clustering", 1)[0]


def test_the_example_is_the_one_documented():
    code = pruning_example()
    assert "edgeopt.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=2000)" in code
    assert "model.fit(x, y, epochs=10" in code and "edgeopt.KeepSparsity()" in code


def test_pruning_example_on_an_already_trained_model(capsys):
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6400, 16)).astype("float32")  # 200 batches of 32 per epoch: 2000 steps in 10
    y = (x[:, :4].sum(axis=1) > 0).astype("int32")
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=10, verbose=0)  # trained first: the optimizer is 2000 iterations in
    assert int(model.optimizer.iterations.numpy()) == 2000

    exec(compile(pruning_example(), str(README), "exec"), {"model": model, "x": x, "y": y})

    report = edgeopt.sparsity_report(model)
    assert report.sparsity == pytest.approx(0.8, abs=0.002)
    assert all(layer.zeros < layer.params for layer in report.layers)
    assert "total" in capsys.readouterr().out  # the example prints the report
    accuracy = model.evaluate(x, y, verbose=0)[1]
    assert accuracy > 0.8
