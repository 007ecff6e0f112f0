"""Pruning schedules: values, validation, config round-trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeopt import ConfigError, ConstantSparsity, PolynomialDecay
from edgeopt.pruning.schedule import deserialize_schedule, serialize_schedule


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


# -- NumPy numbers are numbers; booleans are not ---------------------------------------


def test_the_tfmot_guide_end_step_is_accepted():
    end_step = np.ceil(1259 / 64).astype(np.int32) * 2  # as in tfmot's pruning guide
    schedule = PolynomialDecay(initial_sparsity=np.float64(0.5), final_sparsity=np.float32(0.8), begin_step=np.int64(0),
                               end_step=end_step)
    config = schedule.get_config()
    assert config["end_step"] == 40 and type(config["end_step"]) is int and type(config["final_sparsity"]) is float
    assert json.loads(json.dumps(config)) == config and PolynomialDecay.from_config(config) == schedule


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(float(value)))


def _kinds(values):
    """The same values as Python ints/floats and as NumPy scalars of several widths."""
    return st.one_of(values, values.map(np.int32) if values is INTS else values.map(np.float32),
                     values.map(np.int64) if values is INTS else values.map(np.float64))


INTS = st.integers(-3, 2**31 - 1)
REALS = st.floats(-0.5, 1.5, allow_nan=False)
ODD = st.one_of(st.booleans(), st.booleans().map(np.bool_), st.none(), st.just(float("nan")), st.just(float("inf")),
                st.text(max_size=3), st.floats(0, 100).map(lambda f: f + 0.5))
STEPS = st.one_of(_kinds(INTS), ODD)
SPARSITIES = st.one_of(_kinds(REALS), ODD, st.integers(-1, 2), st.integers(0, 1).map(np.int64))


@settings(max_examples=300, deadline=None)
@given(initial=SPARSITIES, final=SPARSITIES, begin=STEPS, end=STEPS)
def test_schedule_arguments_of_any_numeric_kind(initial, final, begin, end):
    def sparsity_ok(v):
        return _is_real(v) and 0 <= float(v) < 1

    steps_ok = _is_int(begin) and _is_int(end) and begin >= 0 and end != -1 and end > begin
    if sparsity_ok(initial) and sparsity_ok(final) and steps_ok:
        schedule = PolynomialDecay(initial, final, begin, end)
        config = schedule.get_config()
        assert config == {"initial_sparsity": float(initial), "final_sparsity": float(final),
                          "begin_step": int(begin), "end_step": int(end), "power": 3}
        assert [type(config[k]) for k in ("initial_sparsity", "begin_step", "end_step")] == [float, int, int]
        assert PolynomialDecay.from_config(json.loads(json.dumps(config))) == schedule
        assert schedule.sparsity(int(end)) == pytest.approx(float(final))
    else:
        with pytest.raises(ConfigError, match="Received: "):
            PolynomialDecay(initial, final, begin, end)
    constant_ok = sparsity_ok(final) and _is_int(begin) and _is_int(end) and begin >= 0 and (end == -1 or end > begin)
    if constant_ok:
        assert ConstantSparsity(final, begin, end).get_config()["begin_step"] == int(begin)
    else:
        with pytest.raises(ConfigError, match="Received: "):
            ConstantSparsity(final, begin, end)


@pytest.mark.parametrize("end_step, message", [
    (3.5, "end_step must be an integer"), (True, "end_step must be an integer"),
    (np.float64(40.0), "end_step must be an integer"), (np.int32(5), "end_step must be greater than begin_step")])
def test_bad_steps_name_the_real_problem(end_step, message):
    with pytest.raises(ConfigError, match=message):
        PolynomialDecay(0.0, 0.8, begin_step=10, end_step=end_step)


# -- the update grid ------------------------------------------------------------------


def updates(schedule, frequency, steps):
    """The steps at which a run of `steps` steps updates its masks."""
    out = []
    nxt = schedule.next_update(0, frequency)
    for step in range(1, steps + 1):
        if nxt is not None and step >= nxt:
            out.append(step)
            nxt = schedule.next_update(step, frequency)
    return out


def test_end_step_is_an_update_even_off_the_frequency_grid():
    assert updates(PolynomialDecay(0.0, 0.8, 0, 29), 10, 60) == [1, 10, 20, 29]
    assert updates(PolynomialDecay(0.0, 0.8, 5, 30), 10, 60) == [5, 15, 25, 30]
    assert updates(PolynomialDecay(0.0, 0.8, 0, 30), 10, 60) == [1, 10, 20, 30]
    assert updates(ConstantSparsity(0.5, begin_step=3), 4, 12) == [3, 7, 11]
    schedule = PolynomialDecay(0.0, 0.8, 0, 29)
    assert schedule.sparsity(updates(schedule, 10, 60)[-1]) == pytest.approx(0.8)  # not 0.776 at step 20


def test_step_reached_inverts_the_schedule_on_its_grid():
    schedule = PolynomialDecay(0.0, 0.8, 0, 60)
    for step in (5, 20, 35, 55, 60):
        assert schedule.step_reached(schedule.sparsity(step), 5, 1e-4) == step
    assert schedule.step_reached(0.0, 5, 1e-4) == 0 and schedule.step_reached(0.95, 5, 1e-4) == 60
    assert PolynomialDecay(0.8, 0.2, 0, 60).step_reached(0.5, 5, 1e-4) == 0  # not monotone: no guess
    assert ConstantSparsity(0.5, begin_step=7).step_reached(0.5, 5, 1e-4) == 7
    assert ConstantSparsity(0.5, begin_step=7).step_reached(0.2, 5, 1e-4) == 0


def test_schedules_serialize_by_class_name():
    schedule = PolynomialDecay(0.1, 0.9, 5, 50, power=2)
    data = serialize_schedule(schedule)
    assert data == {"class_name": "PolynomialDecay", "config": schedule.get_config()}
    assert deserialize_schedule(json.loads(json.dumps(data))) == schedule
    assert schedule.key() == PolynomialDecay(0.1, 0.9, 5, 50, power=2).key() != PolynomialDecay(0.1, 0.9, 5, 51).key()
    with pytest.raises(ConfigError, match="Not a serialized pruning schedule"):
        deserialize_schedule({"class_name": "Cosine", "config": {}})
