"""Pruning schedules: values, validation, config round-trip."""

from __future__ import annotations

import pytest

from edgeopt import ConfigError, ConstantSparsity, PolynomialDecay


def test_polynomial_decay_is_cubic_by_default():
    s = PolynomialDecay(0.0, 0.8, begin_step=100, end_step=1100)
    assert s.sparsity(0) == 0.0 and s.sparsity(100) == 0.0
    assert s.sparsity(600) == pytest.approx(0.8 - 0.8 * 0.5**3)
    assert s.sparsity(1100) == pytest.approx(0.8) and s.sparsity(5000) == pytest.approx(0.8)
    assert PolynomialDecay(0.2, 0.6, 0, 10, power=1).sparsity(5) == pytest.approx(0.4)


def test_constant_sparsity():
    s = ConstantSparsity(0.5, begin_step=10)
    assert s.sparsity(9) == 0.0 and s.sparsity(10) == 0.5 and s.active(10**6)
    assert not ConstantSparsity(0.5, begin_step=10, end_step=20).active(21)


@pytest.mark.parametrize("schedule", [ConstantSparsity(0.75, 3, 90), PolynomialDecay(0.1, 0.9, 5, 50, power=2)])
def test_config_round_trip(schedule):
    assert type(schedule).from_config(schedule.get_config()) == schedule


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ConstantSparsity(1.0), r"target_sparsity must be in \[0, 1\)\. Received: target_sparsity=1\.0"),
        (lambda: ConstantSparsity(-0.1), "target_sparsity=-0.1"),
        (lambda: PolynomialDecay(0.0, 0.8, begin_step=100, end_step=100), "end_step must be greater than begin_step"),
        (lambda: PolynomialDecay(0.0, 0.8, begin_step=10, end_step=5), "begin_step=10, end_step=5"),
        (lambda: PolynomialDecay(0.0, 0.8, begin_step=0, end_step=-1), "needs an end_step"),
        (lambda: PolynomialDecay(0.0, 0.8, 0, 10, power=0), "power must be > 0"),
        (lambda: ConstantSparsity(0.5, begin_step=-1), "begin_step must be an integer >= 0"),
    ],
)
def test_bad_schedules(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
