"""A search worker: claims trials until the study holds `--trials` of them, runs each.

Every worker, in the coordinator's process (`--workers 1`) or in one of its own
(`--workers K`, `multiprocessing` spawn), loads the study with `optuna.load_study`
and its own sampler, and repeats: under `ClaimLock`, count the study's COMPLETE,
PRUNED, FAIL and RUNNING trials and, when there are fewer than `--trials`, ask for one;
then run it (heartbeats on) and tell Optuna how it ended.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from edgeopt.errors import EdgeoptError
from edgeopt.search.report import describe
from edgeopt.search.storage import ClaimLock, Heartbeat, open_storage

Progress = Callable[[str], None]


def counted_states():
    from optuna.trial import TrialState

    return TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING


def count_trials(study: Any) -> int:
    """The trials `--trials` counts: COMPLETE, PRUNED, FAIL and RUNNING."""
    return len(study.get_trials(deepcopy=False, states=counted_states()))


def quiet_optuna() -> None:
    """Optuna's per-trial INFO lines and experimental-feature warnings off: edgeopt prints its own."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # edgeopt beats the heartbeat of the trials it asks for itself (`storage.Heartbeat`).
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def make_sampler(settings: Any, seed: int) -> Any:
    """The settings' Optuna sampler. The budget is its constraints: set on each trial
    (`trial.set_constraint`, Optuna >= 5), or through `constraints_func` before that."""
    import optuna

    from edgeopt.search.settings import Sampler

    budget = settings.budget
    constraints = None
    if budget.limits and not hasattr(optuna.trial.Trial, "set_constraint"):
        constraints = lambda trial: budget.constraints(trial.user_attrs.get("metrics") or {})  # noqa: E731
    if settings.sampler is Sampler.NSGA2:
        return optuna.samplers.NSGAIISampler(population_size=max(2, settings.startup_trials), seed=seed,
                                             constraints_func=constraints)
    if settings.sampler is Sampler.RANDOM:
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(n_startup_trials=settings.startup_trials, seed=seed,
                                      constraints_func=constraints)


def fail_interrupted(study: Any, storage: Any, say: Progress, *, everything: bool) -> list[int]:
    """Marks FAIL the trials left RUNNING by a worker that stopped, and says so.

    Args:
        everything: every RUNNING trial is stale (an embedded study, whose search
            directory is locked, while no worker runs); else only those whose
            heartbeat stopped (`optuna.storages.fail_stale_trials`).
    """
    import optuna
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if everything:
        failed = []
        for trial in running:
            attrs = trial.user_attrs
            note = (f"interrupted while RUNNING (pid {attrs.get('pid', '?')} on {attrs.get('host', '?')}): marked "
                    "FAIL on the next start; it counts towards --trials and is not run again")
            try:  # Optuna's storage API is by trial id
                storage.set_trial_user_attr(trial._trial_id, "interrupted", note)
                if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                    failed.append(trial.number)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
    else:
        optuna.storages.fail_stale_trials(study)
        still = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        failed = [t.number for t in running if t.number not in still]
    for number in failed:
        say(f"trial {number} was interrupted while RUNNING: marked FAIL; it counts towards --trials and is not "
            "run again")
    return failed


def work(study: Any, storage: Any, lock: ClaimLock, runner: Any, total: int, deadline: float | None,
         say: Progress, *, embedded: bool) -> int:
    """Runs trials until the study holds `total` (or `deadline`, a `time.time()`, passes)."""
    ran = 0
    while True:
        if deadline is not None and time.time() >= deadline:
            say("time is up: no new trial starts (--timeout-s)")
            return ran
        with lock.held():
            if not embedded:
                fail_interrupted(study, storage, say, everything=False)
            if count_trials(study) >= total:
                return ran
            trial = study.ask()
            storage.record_heartbeat(trial._trial_id)  # from now on a stopped worker's trial shows as stale
        with Heartbeat(storage, trial._trial_id, grace_s=runner.inputs.settings.grace_s):
            run_one(study, runner, trial, total, say)
        ran += 1
        gc.collect()


def run_one(study: Any, runner: Any, trial: Any, total: int, say: Progress) -> None:
    """Runs one trial and tells Optuna how it ended: COMPLETE, PRUNED (stopped early) or FAIL."""
    import optuna
    from optuna.trial import TrialState

    started = time.perf_counter()
    label = f"trial {trial.number} ({trial.number + 1}/{total})"
    try:
        values = runner(trial)
    except optuna.TrialPruned as exc:
        trial.set_user_attr("stopped", str(exc) or "stopped early")
        study.tell(trial, state=TrialState.PRUNED)
        say(f"{label}: {describe(trial.user_attrs.get('params', trial.params))}: {exc} "
            f"({time.perf_counter() - started:.1f} s)")
        return
    except KeyboardInterrupt:
        with _no_interrupts():  # a second Ctrl-C must not leave it RUNNING
            trial.set_user_attr("interrupted", "interrupted (Ctrl-C): marked FAIL, not run again")
            study.tell(trial, state=TrialState.FAIL)
        raise
    except Exception as exc:  # a failing trial must not lose the others
        error = " ".join(str(exc).split()) if isinstance(exc, EdgeoptError) else f"{type(exc).__name__}: {exc}"
        trial.set_user_attr("error", error[:2000])
        if not isinstance(exc, EdgeoptError):
            trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
        study.tell(trial, state=TrialState.FAIL)
        say(f"{label}: FAILED after {time.perf_counter() - started:.1f} s: {error[:300]}")
        return
    study.tell(trial, values)
    metrics = trial.user_attrs.get("metrics") or {}
    budget = runner.inputs.settings.budget
    verdict = ("meets the budget" if budget.is_met(metrics) else f"misses: {budget.describe_miss(metrics)}") \
        if budget.limits else "no budget"
    reused = f", reused from trial {trial.user_attrs['duplicate_of']}" if "duplicate_of" in trial.user_attrs else ""
    say(f"{label}: {describe(trial.user_attrs['params'])} -> drop {values[0]:+.2f} pts, {values[1]:.2f} KiB "
        f"{budget.size}, p50 {values[2]:.4f} ms; {verdict} ({time.perf_counter() - started:.1f} s{reused})")


@contextlib.contextmanager
def _no_interrupts():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def load(url: str | None, storage: Any, study_name: str, settings: Any, seed: int) -> tuple[Any, Any]:
    """`(storage, study)`: the study loaded with this worker's own sampler."""
    import optuna

    storage = storage if storage is not None else open_storage(url, grace_s=settings.grace_s)
    return storage, optuna.load_study(study_name=study_name, storage=storage, sampler=make_sampler(settings, seed))


def worker_main(index: int, job: dict, queue: Any) -> None:
    """Entry point of a worker process: sends `("line", text)`, then `("done",)` or `("error", message, traceback)`."""
    try:
        from edgeopt import _quiet

        _quiet.set_verbose(job["verbose"])
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(job["threads"])
        quiet_optuna()
        say = lambda line: queue.put(("line", f"[w{index}] {line}"))  # noqa: E731
        run_worker(job, say, seed_offset=1000 * index)
        queue.put(("done",))
    except KeyboardInterrupt:
        queue.put(("done",))
    except EdgeoptError as exc:
        queue.put(("error", " ".join(str(exc).split()), None))
    except BaseException as exc:  # a bug: its traceback goes to the coordinator, which raises it
        queue.put(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))


def run_worker(job: dict, say: Progress, *, seed_offset: int = 0, storage: Any = None) -> int:
    """One worker's whole life: data, study, runner, trials. `job` is plain, picklable data."""
    from edgeopt.pipeline import techniques
    from edgeopt.search.objective import TrialInputs, TrialRunner
    from edgeopt.search.settings import SearchSettings

    recipe = job["recipe"]
    settings = SearchSettings(**recipe.search)
    seed = (settings.seed if settings.seed is not None else recipe.train["seed"]) + job["start"] + seed_offset
    storage, study = load(job["url"], storage, recipe.name, settings, seed % 2**32)
    inputs = TrialInputs(recipe=recipe, settings=settings, device=job["device"], out_dir=Path(job["out_dir"]),
                         base_model=Path(job["base_model"]), baseline=job["baseline"],
                         data=techniques.load_data(recipe.data), unsafe=job["unsafe"])
    lock = ClaimLock(job["url"], recipe.name)
    return work(study, storage, lock, TrialRunner(inputs, say), job["trials"], job["deadline"], say,
                embedded=job["embedded"])


def threads_per_worker(workers: int) -> int:
    return max(1, math.floor((os.cpu_count() or 1) / workers))
