"""`--workers K`: K processes on one machine share the embedded SQLite study; the claim
lock keeps the total at --trials, each trial run once."""

from __future__ import annotations

import os
import threading
import time

import optuna
import pytest

from edgeopt.search.storage import ClaimLock, default_url
from edgeopt.search.study import run_search
from tests.search.conftest import seed_with, write_recipe


def test_the_claim_lock_excludes_a_second_holder(tmp_path):
    url = default_url(tmp_path)
    first, second = ClaimLock(url, "s"), ClaimLock(url, "s")
    order = []
    with first.held():
        def claim():
            with second.held():
                order.append("second")

        thread = threading.Thread(target=claim)
        thread.start()
        time.sleep(0.3)
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]


@pytest.mark.slow
def test_two_worker_processes_share_the_study(tmp_path, tiny_base):
    lines: list[str] = []
    out = seed_with(tiny_base, tmp_path / "out")
    result = run_search(write_recipe(tmp_path, name="tiny_w"), trials=3, out_dir=out, workers=2,
                        progress=lines.append)
    trials = optuna.load_study(study_name="tiny_w", storage=default_url(tmp_path / "out")).get_trials()
    assert [(t.number, t.state.name) for t in trials] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    pids = {t.user_attrs["pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes, both did work
    tagged = [line for line in lines if "] trial " in line]
    assert len(tagged) == 3 and {line[:4] for line in tagged} == {"[w1]", "[w2]"}
    assert sorted(p.name for p in (tmp_path / "out" / "trials").iterdir()) == ["0000", "0001", "0002"]
    assert result.ran == 3 and result.ok and "trained model: unchanged" in lines[0]
