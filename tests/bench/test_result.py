"""LatencyResult.from_fields: what a device printed becomes a typed result, or a ValueError."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeopt.bench.result import CSV_FIELDS, LatencyResult

GOOD = {"p50_ms": 1.5, "mean_ms": 1.6, "runs": 10, "latencies_ms": [1.4, 1.5], "drift": False,
        "runtime": "ai_edge_litert", "temperature_before_c": -5.0}


def test_good_fields():
    result = LatencyResult.from_fields("d", "m.tflite", dict(GOOD, unknown_key=1), transport="ssh")
    assert result.ok and result.p50_ms == 1.5 and result.runs == 10 and result.temperature_before_c == -5.0


@pytest.mark.parametrize("change, message", [
    ({"p50_ms": "1.5"}, "p50_ms is not a number"),
    ({"p50_ms": float("nan")}, "p50_ms is nan"),
    ({"mean_ms": float("inf")}, "mean_ms is inf"),
    ({"latencies_ms": [1.0, float("nan")]}, "latencies_ms is nan"),
    ({"latencies_ms": "1,2"}, "latencies_ms is not a list"),
    ({"min_ms": -1.0}, "min_ms is -1.0"),
    ({"runs": "10"}, "runs is not a non-negative integer"),
    ({"runs": 10**400}, "runs is not a non-negative integer"),
    ({"drift": "no"}, "drift is not true/false"),
    ({"runtime": 3}, "runtime is not a string"),
    ({"p50_ms": None, "mean_ms": None}, "no latency"),
])
def test_odd_fields_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        LatencyResult.from_fields("d", "m", dict(GOOD, **change))


def test_the_device_cannot_set_the_harness_fields():
    result = LatencyResult.from_fields("d", "m", dict(GOOD, device="x", model="y", status="error", error="e",
                                                      seconds=float("nan")))
    assert (result.device, result.model, result.status, result.error, result.seconds) == ("d", "m", "ok", None, None)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)
_keys = st.sampled_from(sorted(CSV_FIELDS) + ["latencies_ms", "x"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(_json, st.dictionaries(_keys, _json, max_size=10),
                 st.dictionaries(_keys, st.floats() | st.integers() | st.booleans() | st.none(), max_size=10)))
def test_any_output_is_a_result_or_a_value_error(fields):
    try:
        result = LatencyResult.from_fields("d", "m", fields)
    except ValueError:
        return
    assert result.ok and (result.p50_ms is not None or result.mean_ms is not None)
    for value in result.to_dict().values():
        assert not isinstance(value, float) or math.isfinite(value)
    assert LatencyResult.from_fields("d", "m", result.to_dict()) == result  # round-trips


def test_write_csv_and_json_round_trip(tmp_path):
    import csv
    import json

    from edgeopt.bench.result import write_csv, write_json

    results = [LatencyResult.from_fields("pi", "a,b.tflite", GOOD),
               LatencyResult(device="pi", model="c.tflite", status="error", error="no route", error_type="DeviceError")]
    write_csv(results, tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == CSV_FIELDS and "latencies_ms" not in rows[0]
    assert [(r["model"], r["status"], r["p50_ms"], r["error"]) for r in rows] == [
        ("a,b.tflite", "ok", "1.5", ""), ("c.tflite", "error", "", "no route")]
    write_json(results, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == [r.to_dict() for r in results]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json"]  # no temp files left
