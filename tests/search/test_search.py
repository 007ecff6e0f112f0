"""`edgeopt search` end to end on tiny trials (1 epoch, float32): the study resumes
without repeating a trial, an interrupted trial is marked FAIL, a budget nobody meets
is one clear message and exit 1, the report and best.tflite are written."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from click.testing import CliRunner

from edgeopt import ConfigError
from edgeopt.cli import cli
from edgeopt.pipeline.lock import RunLock
from edgeopt.search.study import run_search
from tests.search.conftest import write_recipe

pytestmark = pytest.mark.slow


def trials_of(out):
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}").get_trials()


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A search of two trials; the tests below continue it, in order."""
    root = tmp_path_factory.mktemp("search")
    lines: list[str] = []
    result = run_search(write_recipe(root), trials=2, out_dir=root / "out", progress=lines.append)
    return root, result, lines


def test_first_search_runs_its_trials_and_reports(searched):
    root, result, lines = searched
    out = root / "out"
    assert result.ran == 2 and result.counts == {"total": 2, "complete": 2} and result.ok
    assert [line.split(":")[0] for line in lines if line.startswith("trial ")] == ["trial 0 (1/2)", "trial 1 (2/2)"]
    assert "baseline: accuracy" in "\n".join(lines)
    best = min(result.rows, key=lambda r: r.size_kb)  # every trial meets the 50-point budget
    assert result.best.number == best.number and result.best_path == str(out / "best.tflite")
    trial_file = out / "trials" / f"{best.number:04d}" / "model.float32.tflite"
    assert (out / "best.tflite").read_bytes() == trial_file.read_bytes()
    export_report = json.loads((out / "export_report.json").read_text())
    assert export_report["entries"][0]["validation"]["accuracy"] == pytest.approx(best.accuracy)
    from edgeopt.convert.interpreter import TfliteRunner  # the best model runs in LiteRT

    assert TfliteRunner((out / "best.tflite").read_bytes()).run(np.zeros((2, 8, 8, 1), np.float32)).shape == (2, 10)
    assert (out / "trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    assert "## Pareto front" in md and "Best for the budget" in md and "| 1 | complete |" in md
    assert json.loads((out / "report.json").read_text())["best"]["number"] == best.number
    for trial in trials_of(out):  # measured, not estimated: the figures are the trial's own files
        bench = json.loads((out / "trials" / f"{trial.number:04d}" / "bench.json").read_text())[0]
        assert trial.values[2] == pytest.approx(bench["p50_ms"]) and bench["status"] == "ok"
        assert trial.values[1] == pytest.approx(trial.user_attrs["metrics"]["gzip_size_bytes"] / 1024)


def test_a_larger_trials_continues_the_study_without_repeating(searched):
    root, _, _ = searched
    out = root / "out"
    before = {t.number: (t.datetime_start, t.params, t.values) for t in trials_of(out)}
    lines: list[str] = []
    result = run_search(write_recipe(root), trials=3, out_dir=out, progress=lines.append)
    after = trials_of(out)
    assert result.ran == 1 and [t.number for t in after] == [0, 1, 2]
    assert {n: (t.datetime_start, t.params, t.values) for n, t in enumerate(after[:2])} == before  # untouched
    assert [line.split(":")[0] for line in lines if line.startswith("trial ")] == ["trial 2 (3/3)"]
    assert "trained model: unchanged" in "\n".join(lines)  # nor is the base model trained again
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0000", "0001", "0002"]

    lines.clear()
    again = run_search(write_recipe(root), trials=3, out_dir=out, progress=lines.append)
    assert again.ran == 0 and "already holds 3 trials (--trials 3): nothing to run" in "\n".join(lines)
    assert [t.datetime_start for t in trials_of(out)] == [t.datetime_start for t in after]


def test_a_trial_left_running_is_marked_fail_and_not_repeated(searched):
    root, _, _ = searched
    out = root / "out"
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    killed = study.ask()  # what a worker killed mid-trial leaves behind
    killed.set_user_attr("pid", 999999)
    lines: list[str] = []
    result = run_search(write_recipe(root), trials=5, out_dir=out, progress=lines.append)
    trials = trials_of(out)
    assert [(t.number, t.state.name) for t in trials] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE"),
                                                          (3, "FAIL"), (4, "COMPLETE")]
    assert "trial 3 was interrupted while RUNNING: marked FAIL; it counts towards --trials" in "\n".join(lines)
    assert "pid 999999" in trials[3].user_attrs["interrupted"] and result.ran == 1
    assert "interrupted while RUNNING" in next(r.note for r in result.rows if r.number == 3)


def test_a_budget_no_trial_meets_is_one_clear_line_and_exit_1(searched):
    root, _, _ = searched
    out = root / "out"
    assert (out / "best.tflite").is_file()
    recipe = write_recipe(root, search={"budget": {"max_size_kb": 0.01, "max_accuracy_drop": 50.0}})
    result = CliRunner().invoke(cli, ["search", str(recipe), "--trials", "5", "--out", str(out), "-q"])
    assert result.exit_code == 1, result.output
    error = result.stderr.strip()
    assert error.count("\n") == 0 and error.startswith(
        "Error: No trial meets the budget (max_accuracy_drop 50, max_size_kb 0.01) after 5 trials (4 complete, 1 fail)")
    closest = min((t for t in trials_of(out) if t.state.name == "COMPLETE"), key=lambda t: t.values[1])
    assert f"Closest: trial {closest.number} (" in error
    assert f"gzip size {closest.values[1]:.3g} KiB > 0.01 (over by {closest.values[1] - 0.01:.3g})" in error
    assert not (out / "best.tflite").exists() and not (out / "export_report.json").exists()
    assert "No trial meets the budget" in (out / "report.md").read_text()

    result = CliRunner().invoke(cli, ["search", str(recipe), "--trials", "5", "--out", str(out), "-q", "--json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 1 and data["ok"] is False and data["best"] is None
    assert data["closest"]["number"] == closest.number and data["counts"]["fail"] == 1


def test_another_space_cannot_continue_the_study(searched):
    root, _, _ = searched
    recipe = write_recipe(root, search={"space": {"sparsity": [0.0, 0.9], "precision": ["float32"]}})
    with pytest.raises(ConfigError, match="was made by a different recipe, search space, fine-tuning or device"):
        run_search(recipe, trials=9, out_dir=root / "out")


def test_a_search_directory_in_use_is_refused(searched):
    root, _, _ = searched
    with RunLock(root / "out"):
        with pytest.raises(ConfigError, match="Another edgeopt run is using this run directory"):
            run_search(write_recipe(root), trials=9, out_dir=root / "out")
