"""The budget: limits, which trial is best for it, and the message when none meets it."""

from __future__ import annotations

import math

import pytest

from edgeopt import ConfigError
from edgeopt.search.budget import Budget
from edgeopt.search.report import TrialRow, collect_rows, pick


def row(number, drop, size_kb, p50, state="COMPLETE"):
    return TrialRow(number=number, state=state, params={"sparsity": 0.1 * number}, accuracy=0.9,
                    accuracy_drop_points=drop, size_kb=size_kb, p50_ms=p50)


def rows_for(budget, rows):
    for r in rows:
        if r.measured:
            r.meets_budget = budget.is_met({"accuracy_drop_points": r.accuracy_drop_points, "size_kb": r.size_kb,
                                            "p50_ms": r.p50_ms})
    return rows


def test_best_is_the_smallest_within_every_limit_then_the_most_accurate():
    budget = Budget(max_accuracy_drop=1.0, max_latency_ms=2.0)
    rows = rows_for(budget, [row(0, 0.2, 30.0, 1.0), row(1, 0.9, 12.0, 1.5), row(2, 0.4, 12.0, 1.9),
                             row(3, 1.5, 5.0, 1.0), row(4, 0.1, 8.0, 2.5), row(5, None, None, None, "PRUNED")])
    best, closest, message = pick(rows, budget)
    assert best.number == 2 and closest is None  # 3 drops too much, 4 is too slow; 2 beats 1 on accuracy
    assert message.startswith("Best for the budget (max_accuracy_drop 1, max_latency_ms 2): trial 2")


def test_no_trial_meets_the_budget_names_the_closest_and_the_miss():
    budget = Budget(max_accuracy_drop=1.0, max_size_kb=10.0)
    rows = rows_for(budget, [row(0, 0.5, 40.0, 1.0), row(1, 1.6, 11.0, 1.0), row(2, 0.2, 25.0, 1.0),
                             row(3, None, None, None, "FAIL")])
    best, closest, message = pick(rows, budget)
    assert best is None and closest.number == 1  # 60% + 10% over, against 300% and 150%
    assert "No trial meets the budget (max_accuracy_drop 1, max_size_kb 10) after 4 trials (3 complete, 1 fail)" \
        in message
    assert "Closest: trial 1 (sparsity=0.1): accuracy drop 1.6 points > 1 (over by 0.6); gzip size 11 KiB > 10 " \
           "(over by 1)" in message


def test_no_finished_trial_says_so():
    best, closest, message = pick([row(0, None, None, None, "PRUNED")], Budget(max_size_kb=1))
    assert best is closest is None and "no trial finished (1 pruned)" in message


class _Trial:
    def __init__(self, number, metrics, state="COMPLETE"):
        import optuna

        self.number, self.state, self.params = number, optuna.trial.TrialState[state], {"x": number}
        self.user_attrs = {"metrics": metrics, "params": self.params}


def test_rows_count_the_budgets_size_and_mark_the_front():
    metrics = lambda drop, raw, gz, p50: {"accuracy": 0.9, "accuracy_drop_points": drop, "size_bytes": raw,  # noqa
                                          "gzip_size_bytes": gz, "p50_ms": p50}
    trials = [_Trial(0, metrics(0.5, 4096, 2048, 1.0)), _Trial(1, metrics(0.5, 4096, 3072, 1.0)),
              _Trial(2, metrics(0.1, 8192, 4096, 1.0)), _Trial(3, {}, "PRUNED")]
    gz = collect_rows(trials, Budget(size="gzip"))
    assert [r.size_kb for r in gz[:3]] == [2.0, 3.0, 4.0] and [r.pareto for r in gz] == [True, False, True, False]
    raw = collect_rows(trials, Budget(size="raw"))
    assert [r.size_kb for r in raw[:3]] == [4.0, 4.0, 8.0] and [r.pareto for r in raw] == [True, True, True, False]


@pytest.mark.parametrize("kwargs", [{"max_accuracy_drop": -1}, {"max_size_kb": 0}, {"max_latency_ms": math.inf},
                                    {"max_latency_ms": "1"}, {"size": "lz4"}, {"size": None}])
def test_bad_limits_are_refused(kwargs):
    with pytest.raises(ConfigError, match=r"budget\.\w+ must be"):
        Budget(**kwargs)


def test_constraints_are_optunas_sign_convention():
    budget = Budget(max_accuracy_drop=1.0, max_size_kb=10.0)
    assert budget.constraints({"accuracy_drop_points": 0.5, "size_kb": 12.0}) == [-0.5, 2.0]
    assert budget.constraints({}) == [1e9, 1e9]  # not measured: infeasible
    assert Budget().constraints({}) == [] and Budget().is_met({})


def test_best_tflite_is_only_copied_from_this_search_directory(tmp_path):
    """A shared study's record is not trusted to name any file: best.tflite comes from trials/ here."""
    from edgeopt.search.report import SearchReport, _place_best

    secret = tmp_path / "secret.tflite"
    secret.write_bytes(b"not yours")
    (tmp_path / "best.tflite").write_bytes(b"stale")
    best = row(0, 0.1, 1.0, 1.0)
    for recorded in (str(secret), str(tmp_path / "trials" / ".." / "secret.tflite"), "/etc/passwd", None):
        best.tflite = recorded
        report = SearchReport([best], best, None, "Best.")
        _place_best(tmp_path, best, report)
        assert report.best_path is None and "is not in this search directory" in report.message
        assert not (tmp_path / "best.tflite").exists()  # nor is an earlier best left behind
    (tmp_path / "trials" / "0000").mkdir(parents=True)
    (tmp_path / "trials" / "0000" / "model.float32.tflite").write_bytes(b"\x00" * 64)
    best.tflite = str(tmp_path / "trials" / "0000" / "model.float32.tflite")
    report = SearchReport([best], best, None, "Best.")
    _place_best(tmp_path, best, report)  # in trials/, but not a .tflite: refused, not copied
    assert "is not a valid .tflite" in report.message and not (tmp_path / "best.tflite").exists()
