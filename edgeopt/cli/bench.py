"""`edgeopt bench`: latency of .tflite models on one or more devices."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import click

from edgeopt.cli._options import device_option, json_option, out_option, quiet_option
from edgeopt.bench.harness import benchmark
from edgeopt.cli._output import echo_json, progress_printer, table
from edgeopt.errors import ConfigError

# The flags' defaults are benchmark's: one source of truth.
_DEFAULTS = {name: p.default for name, p in inspect.signature(benchmark).parameters.items()}


class _Interrupted(click.ClickException):
    exit_code = 130  # 128 + SIGINT, as shells report it


def _check_output_file(path: str | None, flag: str) -> None:
    """Fails before any measurement when `path` cannot be written as a file."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir() or path.endswith(("/", os.sep)):
        raise ConfigError(f"{flag} names a directory. Received: {flag} {path!r}. Pass a file path such as "
                          f"{target / ('results.csv' if flag == '--csv' else 'results.json')}.")
    parent = target.parent
    if not parent.is_dir():
        raise ConfigError(f"The directory for {flag} does not exist. Received: {flag} {path!r}. "
                          f"Create {str(parent)!r} first, or pass another path.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"The directory for {flag} is not writable. Received: {flag} {path!r}. "
                          "Pass a path in a directory you can write.")


def _fmt(x, digits=3):
    if x is None:
        return ""
    return f"{x:.{digits}f}" if abs(x) >= 1 else f"{x:.{digits}g}"


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path())
@device_option("Device profile name or .yaml path; repeat for several (run in parallel).",
               default=list(_DEFAULTS["devices"]), show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=_DEFAULTS["threads"],
              help="Inference threads (default: profile, else runtime).")
@click.option("--runs", type=click.IntRange(min=1), default=_DEFAULTS["runs"], show_default=True,
              help="At least this many timed runs.")
@click.option("--warmup", type=click.IntRange(min=0), default=_DEFAULTS["warmup"], show_default=True)
@click.option("--min-secs", type=click.FloatRange(min=0), default=_DEFAULTS["min_secs"], show_default=True,
              help="Keep running until this many seconds have passed too.")
@click.option("--max-secs", type=click.FloatRange(min=0.1), default=_DEFAULTS["max_secs"], show_default=True)
@click.option("--keep", is_flag=True, default=_DEFAULTS["keep"], help="Leave pushed files on the device.")
@json_option("results")
@click.option("--csv", "csv_path", type=click.Path(), help="Also write results as CSV.")
@out_option("out_path", "Also write results (with per-run latencies) as JSON to this file.")
@quiet_option
def bench(models, devices, threads, runs, warmup, min_secs, max_secs, keep, as_json, csv_path, out_path, quiet):
    """Measure MODELS (.tflite) on each --device; exit 1 if any job failed.

    \b
    Example:
        edgeopt bench out/model.float32.tflite out/model.int8.tflite \\
            --device local --device rpi4 --threads 4 --runs 100 --out results.json
    """
    from edgeopt.bench.result import write_csv, write_json

    _check_output_file(out_path, "--out")
    _check_output_file(csv_path, "--csv")
    try:
        results = benchmark(list(models), list(devices), threads=threads, runs=runs, warmup=warmup,
                             min_secs=min_secs, max_secs=max_secs, keep=keep, progress=progress_printer(not quiet))
    except KeyboardInterrupt:
        raise _Interrupted("Interrupted: the runs on every device were stopped and no results were written. "
                           "Received: Ctrl-C (SIGINT). Run the command again to measure.") from None
    if out_path:
        write_json(results, out_path)
    if csv_path:
        write_csv(results, csv_path)
    if as_json:
        echo_json([r.to_dict(with_latencies=False) for r in results])
    else:
        rows = []
        for r in results:
            if r.ok:
                mean = f"{_fmt(r.mean_ms)} ± {_fmt(r.std_ms)}" if r.std_ms is not None else _fmt(r.mean_ms)
                rows.append([r.device, click.format_filename(r.model), f"{r.runtime} {r.runtime_version or ''}".strip(),
                             _fmt(r.p50_ms), _fmt(r.p90_ms), mean, _fmt(r.init_ms, 1), _fmt(r.peak_rss_mb, 1),
                             "; ".join(x for x in (r.delegation, "DRIFT (throttling?)" if r.drift else None) if x)])
            else:
                rows.append([r.device, click.format_filename(r.model), "ERROR", "", "", "", "", "", r.error])
        click.echo(table(["device", "model", "runtime", "p50 ms", "p90 ms", "mean ± std ms", "init ms",
                          "peak RSS MB", "note"], rows))
    failed = [r for r in results if not r.ok]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(results)} jobs failed: "
                                   + "; ".join(f"{r.device}: {r.error_type}" for r in failed))
