"""`run_search`: an Optuna study over a recipe's `search.space`, to its `search.budget`.

Layout of a search directory:

    study.db                    the study (SQLite), unless --storage names another
    .edgeopt.lock               held by the search using the directory
    train/model.keras           the recipe's model, trained once: every trial starts here
    baseline/, baseline.json    its float32 .tflite and figures: the budget's reference
    trials/<number>/            each trial's .tflite, export_report.json, bench.json, trial.json
    report.md, report.html, report.json, trials.png
    best.tflite, export_report.json    the best trial meeting the budget

Rerunning with the same directory continues the study: `--trials` is its total, so a
larger N runs only the missing trials and an equal one just rewrites the report.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue as queue_module
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgeopt._files import ensure_writable_dir
from edgeopt.errors import ConfigError, EdgeoptError
from edgeopt.pipeline.lock import RunLock
from edgeopt.pipeline.manifest import hash_inputs
from edgeopt.pipeline.recipe import Recipe, check_device_names, load_recipe
from edgeopt.search import storage as storage_lib
from edgeopt.search.report import TrialRow, write_report

Progress = Callable[[str], None]


@dataclass
class SearchResult:
    """What `run_search` found. `best` is None when no trial meets the budget (then
    `closest` is the nearest miss and `message` says what it missed, by how much)."""

    out_dir: Path
    study: str
    storage: str
    message: str
    best: TrialRow | None
    closest: TrialRow | None
    rows: list[TrialRow] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    ran: int = 0
    best_path: str | None = None

    @property
    def ok(self) -> bool:
        return self.best is not None

    @property
    def front(self) -> list[TrialRow]:
        return sorted((r for r in self.rows if r.pareto), key=lambda r: r.size_kb)


def _check_args(trials, workers, timeout_s) -> None:
    def integer(value):
        return isinstance(value, int) and not isinstance(value, bool)

    if not (integer(trials) and trials >= 1):
        raise ConfigError(f"trials must be an integer >= 1 (the study's total). Received: trials={trials!r}.")
    if not (integer(workers) and workers >= 1):
        raise ConfigError(f"workers must be an integer >= 1. Received: workers={workers!r}.")
    if timeout_s is not None and not (isinstance(timeout_s, (int, float)) and not isinstance(timeout_s, bool)
                                      and math.isfinite(timeout_s) and timeout_s > 0):
        raise ConfigError(f"timeout_s must be a number of seconds > 0, or None. Received: timeout_s={timeout_s!r}.")


def run_search(recipe: str | os.PathLike | Recipe, *, trials: int, out_dir: str | os.PathLike, workers: int = 1,
               storage: str | None = None, timeout_s: float | None = None, progress: Progress | None = None,
               unsafe: bool = False) -> SearchResult:
    """Searches the recipe's `search.space` for models within `search.budget`.

    Example:

    ```python
    result = edgeopt.run_search("recipes/digits_search.yaml", trials=20, out_dir="runs/search")
    print(result.message, result.best_path)
    ```

    Each trial fine-tunes the trained model through the recipe steps' own code
    (distill, prune, cluster), exports it with `export_tflite`, validates it in
    LiteRT and times it on the device with `measure_latency`. A trial interrupted
    while RUNNING (Ctrl-C, a killed worker) is marked FAIL, on the next start for an
    embedded study; it counts towards `trials` and is never run again.

    Args:
        recipe: a recipe path or a parsed `Recipe`, with a `search` section.
        trials: the study's total: COMPLETE, PRUNED, FAIL and RUNNING trials count.
        out_dir: the search directory; an earlier one continues its study.
        workers: worker processes on this machine, sharing the study. Defaults to `1`
            (in this process).
        storage: an Optuna storage URL shared by workers on many machines
            (`postgresql://user@host/db`, or `sqlite:///file.db`). Defaults to `None`
            (`<out_dir>/study.db`).
        timeout_s: start no new trial after this many seconds. Defaults to `None`.
        progress: called with one line per trial. Defaults to `None`.
        unsafe: allow a recipe `model.path` that runs code as it loads. Defaults to `False`.

    Returns:
        A `SearchResult`; the report and `best.tflite` are in `out_dir`.

    Raises:
        ConfigError: a bad recipe, argument or storage, before any training.
    """
    from edgeopt.search.settings import SearchSettings
    from edgeopt.search.worker import quiet_optuna

    say = progress or (lambda line: None)
    _check_args(trials, workers, timeout_s)
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if recipe.search is None:
        raise ConfigError(f"The recipe has no search section. Received: {recipe.path or recipe.name!r}. Add "
                          "search: {budget: {max_accuracy_drop: 1.0}} (see recipes/digits_search.yaml).")
    settings = SearchSettings(**recipe.search)
    device = settings.device or (recipe.bench["devices"][0] if recipe.bench else "local")
    check_device_names([device], "search.device")
    url = storage_lib.resolve_url(storage) if storage is not None else storage_lib.default_url(out_dir)
    storage_lib.backend_of(url)  # a bad URL fails before anything is written
    deadline = time.time() + timeout_s if timeout_s is not None else None
    out = ensure_writable_dir(out_dir, what="search directory")
    embedded = storage is None
    quiet_optuna()
    with RunLock(out):
        store = storage_lib.open_storage(url, grace_s=settings.grace_s)
        lock = storage_lib.ClaimLock(url, recipe.name)
        study = _open_study(store, lock, recipe, settings, device)
        from edgeopt.search.worker import count_trials, fail_interrupted

        if embedded:
            fail_interrupted(study, store, say, everything=True)
        done, ran = count_trials(study), 0
        info = {"study": recipe.name, "storage": storage_lib.display_url(url), "device": device}
        if done >= trials:
            say(f"study {recipe.name!r} already holds {done} trials (--trials {trials}): nothing to run; "
                "pass a larger --trials to continue it")
        else:
            ran = _run_trials(recipe, settings, device, out, url, store, lock, study, trials, workers, deadline,
                              embedded, unsafe, say)
            if embedded:  # a worker that died left its trial RUNNING
                fail_interrupted(study, store, say, everything=True)
        baseline = study.user_attrs.get("baseline")
        if baseline is None:
            raise ConfigError(f"The study {recipe.name!r} has trials but no baseline figures. Received: "
                              f"{info['storage']}. It was not made by edgeopt search; use a fresh --out or --storage.")
        report = write_report(out, study.get_trials(deepcopy=False), settings.budget, baseline, info)
    say(f"report: {out / 'report.md'}")
    return SearchResult(out_dir=out, study=recipe.name, storage=info["storage"], message=report.message,
                        best=report.best, closest=report.closest, rows=report.rows, counts=report.counts, ran=ran,
                        best_path=report.best_path)


def fingerprint(recipe: Recipe, settings: Any, device: str) -> str:
    """What makes trials comparable: trained model, data, space, fine-tuning, device.
    The budget and the sampler are not in it: a rerun may change them."""
    export = {k: (recipe.export or {}).get(k) for k in ("calibration_samples", "io_dtype")}
    search = {k: v for k, v in settings.to_dict().items() if k not in ("budget", "sampler", "startup_trials")}
    return hash_inputs(recipe.model, recipe.data, recipe.train, export, search, device,
                       (recipe.bench or {}).get("threads"))


def _open_study(store: Any, lock: Any, recipe: Recipe, settings: Any, device: str) -> Any:
    import optuna

    from edgeopt.search.objective import OBJECTIVES

    mark = fingerprint(recipe, settings, device)
    with lock.held():
        study = optuna.create_study(storage=store, study_name=recipe.name, directions=["minimize"] * len(OBJECTIVES),
                                    load_if_exists=True)
        meta = study.user_attrs.get("edgeopt")
        if meta is None and not study.get_trials(deepcopy=False) and len(study.directions) == len(OBJECTIVES):
            study.set_user_attr("edgeopt", {"fingerprint": mark, "objectives": list(OBJECTIVES)})
            study.set_metric_names(list(OBJECTIVES))
        elif not isinstance(meta, dict) or meta.get("fingerprint") != mark:
            what = "was not made by edgeopt search" if not isinstance(meta, dict) else (
                "was made by a different recipe, search space, fine-tuning or device")
            raise ConfigError(f"The study {recipe.name!r} in the storage {what}, so its trials do not compare. "
                              f"Received: fingerprint {mark[:12]} vs {str((meta or {}).get('fingerprint'))[:12]}. "
                              "Use a new --out (or another --storage), or restore the recipe it was made with.")
    return study


def _share_baseline(study: Any, lock: Any, figures: dict, say: Progress) -> dict:
    """The study's baseline: the first worker's figures, so every drop is against one reference."""
    with lock.held():
        stored = study.user_attrs.get("baseline")
        if stored is None:
            study.set_user_attr("baseline", figures)
            return figures
    if abs(stored["accuracy"] - figures["accuracy"]) > 0.005:
        say(f"note: the study's baseline accuracy is {100 * stored['accuracy']:.2f}% (measured first, elsewhere); "
            f"this machine's trained model has {100 * figures['accuracy']:.2f}%. Drops are against the study's.")
    return stored


def _run_trials(recipe, settings, device, out, url, store, lock, study, trials, workers, deadline, embedded,
                unsafe, say) -> int:
    from edgeopt import _quiet
    from edgeopt.pipeline import techniques
    from edgeopt.search.baseline import prepare_baseline
    from edgeopt.search.worker import count_trials, run_worker, threads_per_worker

    data = techniques.load_data(recipe.data)
    base_model, figures = prepare_baseline(recipe, settings, device, out, data, say, unsafe=unsafe)
    baseline = _share_baseline(study, lock, figures, say)
    start = count_trials(study)
    count = min(workers, trials - start)
    say(f"study {recipe.name!r} ({storage_lib.display_url(url)}): {start} of {trials} trials done; running the "
        f"rest on {count} worker{'s' if count > 1 else ''}")
    job = {"recipe": recipe, "url": url, "device": device, "out_dir": str(out), "base_model": str(base_model),
           "baseline": baseline, "trials": trials, "deadline": deadline, "embedded": embedded, "start": start,
           "verbose": _quiet.is_verbose(), "threads": threads_per_worker(count), "unsafe": unsafe}
    try:
        if count == 1:
            run_worker(job, say, storage=store)
        else:
            _spawn(job, count, say)
    except KeyboardInterrupt:
        say(f"interrupted: finished trials are kept in {storage_lib.display_url(url)}; rerun the same command to "
            "continue (a trial stopped mid-way is marked FAIL and not run again)")
        raise
    return count_trials(study) - start


def _spawn(job: dict, count: int, say: Progress) -> None:
    """Runs `count` worker processes and relays their progress lines; raises the first error."""
    from edgeopt.search.worker import worker_main

    context = multiprocessing.get_context("spawn")  # fork would copy TensorFlow's threads and locks
    messages = context.Queue()
    processes = [context.Process(target=worker_main, args=(i + 1, job, messages), name=f"edgeopt-search-w{i + 1}")
                 for i in range(count)]
    for process in processes:
        process.start()
    errors: list[tuple] = []

    def relay(block: bool) -> bool:
        try:
            message = messages.get(timeout=0.5) if block else messages.get_nowait()
        except queue_module.Empty:
            return False
        if message[0] == "line":
            say(message[1])
        elif message[0] == "error":
            errors.append(message)
        return True

    try:
        while any(p.is_alive() for p in processes):
            relay(block=True)
    except KeyboardInterrupt:
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGINT)
        for process in processes:
            process.join(60)
            if process.is_alive():
                process.terminate()
                process.join(10)
        raise
    finally:
        for process in processes:
            process.join()
    while relay(block=False):
        pass
    died = [f"worker {i + 1} (exit code {p.exitcode})" for i, p in enumerate(processes) if p.exitcode]
    if errors:
        _, message, trace = errors[0]
        if trace is None:
            raise EdgeoptError(f"A search worker stopped: {message}")
        raise RuntimeError(f"A search worker crashed (a bug, please report it): {message}\n{trace}")
    if died:
        say(f"{', '.join(died)} stopped without a word; the trial it ran is marked FAIL")
