"""`edgeopt search`: an Optuna study that meets a recipe's budget on its device."""

from __future__ import annotations

from dataclasses import asdict

import click

from edgeopt.cli._options import json_option, out_option, quiet_option, unsafe_option
from edgeopt.cli._output import echo_json, progress_printer, table


class _Interrupted(click.ClickException):
    exit_code = 130  # 128 + SIGINT, as shells report it


@click.command()
@click.argument("recipe", type=click.Path())
@click.option("--trials", type=int, required=True,
              help="The study's total trials; a rerun with a larger N continues up to N.")
@out_option("out_dir", "Search directory (the study, every trial, the report, best.tflite); an earlier one continues.",
            required=True)
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes on this machine.")
@click.option("--storage", default=None, help="Optuna storage URL shared by workers on many machines, e.g. "
                                "postgresql://user@host/db (default: sqlite in --out).")
@click.option("--timeout-s", type=float, default=None, help="Start no new trial after this many seconds.")
@quiet_option
@unsafe_option
@json_option("the result")
def search(recipe, trials, out_dir, workers, storage, timeout_s, quiet, unsafe, as_json):
    """Search RECIPE's `search.space` for the smallest model within its `search.budget`.

    Every trial fine-tunes the recipe's trained model (distill, prune, cluster),
    exports it, validates it in LiteRT and times it on the search's device. The
    Pareto front goes to report.md / report.html / trials.png in --out, the best
    trial meeting every limit to best.tflite. Exit 1 when no trial meets the budget
    (the message names the closest and what it missed). Ctrl-C keeps finished
    trials: rerun the same command to continue.

    \b
    Example:
        edgeopt search recipes/digits_search.yaml --trials 16 --out runs/search
        edgeopt search recipes/digits_search.yaml --trials 32 --out runs/search --workers 2
        edgeopt search recipes/digits_search.yaml --trials 64 --out runs/box1 \\
            --storage postgresql://edgeopt@db.lan/studies     # on every machine
    """
    from edgeopt.search.study import run_search

    say = progress_printer(not quiet)
    try:
        result = run_search(recipe, trials=trials, out_dir=out_dir, workers=workers, storage=storage,
                            timeout_s=timeout_s, progress=say, unsafe=unsafe)
    except KeyboardInterrupt:
        raise _Interrupted("Interrupted: finished trials are kept in the study. Received: Ctrl-C (SIGINT). Rerun the "
                           "same command to continue; a trial stopped mid-way is marked FAIL, not repeated.") from None
    if as_json:
        echo_json({"out_dir": str(result.out_dir), "study": result.study, "storage": result.storage,
                   "ok": result.ok, "message": result.message, "counts": result.counts, "ran": result.ran,
                   "best_path": result.best_path, "best": result.best and asdict(result.best),
                   "closest": result.closest and asdict(result.closest),
                   "front": [asdict(r) for r in result.front]})
    else:
        from edgeopt.search.report import describe

        click.echo(table(["trial", "values", "accuracy %", "drop pts", "size KiB", "p50 ms", "budget"],
                         [[r.number, describe(r.params), round(100 * r.accuracy, 2), round(r.accuracy_drop_points, 2),
                           round(r.size_kb, 2), round(r.p50_ms, 4), "meets" if r.meets_budget else "misses"]
                          for r in result.front]))
        click.echo(f"\n{result.message}\nSearch directory: {result.out_dir} (report.md, report.html, trials.png)")
    if not result.ok:
        raise click.ClickException(" ".join(result.message.split()))
