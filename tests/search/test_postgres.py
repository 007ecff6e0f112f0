"""Distributed mode: two `edgeopt search` processes (two "machines": their own search
directories) share one study on a real PostgreSQL server, and no trial is lost or
run twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.search.conftest import seed_with, write_recipe

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 4

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_two_workers_share_one_postgres_study(postgres_url, tmp_path, tiny_base):
    import optuna
    import sqlalchemy

    recipe = write_recipe(tmp_path, name="tiny_pg")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    plain = postgres_url.replace("+psycopg2", "")  # as a user types it: edgeopt picks the installed driver
    command = [sys.executable, "-m", "edgeopt.cli", "search", str(recipe), "--trials", str(TRIALS),
               "--storage", plain, "--json"]
    workers = [subprocess.Popen([*command, "--out", str(seed_with(tiny_base, tmp_path / f"box{i}"))], cwd=tmp_path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
        assert "password" not in out and json.loads(out)["storage"].startswith("postgresql")
    progress = outputs[0][1] + outputs[1][1]
    assert progress.count(f"/{TRIALS}):") == TRIALS  # one progress line per trial, over both workers

    study = optuna.load_study(study_name="tiny_pg", storage=postgres_url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(TRIALS))  # none lost, none twice
    assert all(t.state.name == "COMPLETE" for t in trials), [(t.number, t.state, t.user_attrs) for t in trials]
    assert {t.user_attrs["pid"] for t in trials} == {w.pid for w in workers}  # both did work
    for trial in trials:
        assert set(trial.params) == {"sparsity", "precision"} and trial.user_attrs["params"] == trial.params
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text(
            "SELECT t.number, p.param_name, count(*) FROM trial_params p JOIN trials t USING (trial_id) "
            "GROUP BY t.number, p.param_name")).all()
    engine.dispose()
    assert sorted((n, name) for n, name, _ in rows) == sorted((t.number, k) for t in trials for k in t.params)
    assert all(count == 1 for _, _, count in rows)  # each trial's params recorded once

    ran = {i: sorted(int(p.name) for p in (tmp_path / f"box{i}" / "trials").iterdir()) for i in range(2)}
    assert sorted(ran[0] + ran[1]) == list(range(TRIALS)) and ran[0] and ran[1]  # every trial ran on one box
    for i in range(2):
        for number in ran[i]:
            recorded = json.loads((tmp_path / f"box{i}" / "trials" / f"{number:04d}" / "trial.json").read_text())
            assert recorded["number"] == number and recorded["params"] == study.trials[number].params
    assert study.user_attrs["baseline"]["accuracy"] > 0.1  # one reference for every drop, set once
    assert all("trained model: unchanged" in err for _, err in outputs)  # started from the copied model


def test_a_dead_workers_trial_is_failed_by_the_next_worker(postgres_url, tmp_path, tiny_base):
    """A worker on another "machine" is killed (SIGKILL: no goodbye) in the middle of a
    trial. Its heartbeat stops; once `grace_s` has passed, the next worker marks that trial
    FAIL (it counts towards --trials, never runs twice) and runs the rest."""
    import signal
    import time

    import optuna

    recipe = write_recipe(tmp_path, name="tiny_dead", search={"grace_s": 2})
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "edgeopt.cli", "search", str(recipe), "--trials", "3", "--storage", postgres_url,
               "--json"]
    doomed = subprocess.Popen([*command, "--out", str(seed_with(tiny_base, tmp_path / "dead"))], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    running = []
    while not running and time.monotonic() < deadline and doomed.poll() is None:
        time.sleep(0.2)
        try:
            study = optuna.load_study(study_name="tiny_dead", storage=postgres_url)
        except KeyError:  # not created yet
            continue
        running = [t for t in study.get_trials() if t.state.name == "RUNNING"]
    assert running, "the first worker never started a trial"
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=30)
    time.sleep(3)  # past grace_s: the dead worker's heartbeat is stale

    survivor = subprocess.run([*command, "--out", str(seed_with(tiny_base, tmp_path / "alive"))], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)
    assert survivor.returncode == 0, survivor.stderr[-3000:]
    dead = running[0].number
    assert f"trial {dead} was interrupted while RUNNING: marked FAIL" in survivor.stderr
    trials = optuna.load_study(study_name="tiny_dead", storage=postgres_url).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2]
    states = {t.number: t.state.name for t in trials}
    assert states.pop(dead) == "FAIL" and set(states.values()) == {"COMPLETE"}
