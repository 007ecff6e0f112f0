"""`edgeopt run`, `edgeopt report`, `edgeopt compare`: the recipe pipeline."""

from __future__ import annotations

import click

from edgeopt.cli._options import device_option, json_option, out_option, quiet_option, unsafe_option
from edgeopt.cli._output import echo_json, progress_printer, table


@click.command()
@click.argument("recipe", type=click.Path())
@out_option("out_dir", "Run directory (default: runs/<recipe>-<timestamp>).")
@click.option("--resume", type=click.Path(), help="Resume this run directory: unchanged stages are skipped.")
@device_option("Device profile; replaces the recipe's devices.")
@click.option("--variants", help="Comma-separated variant names to run (default: all).")
@quiet_option
@unsafe_option
@json_option("the report rows")
def run(recipe, out_dir, resume, devices, variants, quiet, unsafe, as_json):
    """Train, compress, export, benchmark and report as RECIPE says.

    The whole recipe is validated before anything runs. Exit 1 if a stage failed;
    the other variants' results are kept. One run at a time per run directory: a
    second run into a directory in use stops at once (exit 1).

    \b
    Example:
        edgeopt run recipes/digits_cnn.yaml --out runs/digits
        edgeopt run recipes/digits_cnn.yaml --resume runs/digits --device local
    """
    from edgeopt.pipeline.report import collect_rows, markdown_table
    from edgeopt.pipeline.run import run_recipe

    say = progress_printer(not quiet)
    result = run_recipe(recipe, out_dir=out_dir, resume=resume, devices=list(devices) or None,
                        variants=[v.strip() for v in variants.split(",")] if variants else None,
                        progress=(lambda line: say(line)) if say else None, unsafe=unsafe)
    rows = collect_rows(result.run_dir)
    if as_json:
        from dataclasses import asdict

        echo_json({"run_dir": str(result.run_dir), "failed": result.failed, "skipped": result.skipped,
                   "rows": [asdict(r) for r in rows]})
    else:
        click.echo(markdown_table(rows))
        click.echo(f"\nRun directory: {result.run_dir} (report.md, report.html, pareto.png, manifest.json)")
    if result.failed:
        raise click.ClickException(f"{len(result.failed)} stage(s) failed: {', '.join(result.failed)}; "
                                   f"see {result.run_dir}/report.md")


@click.command()
@click.argument("run_dir", type=click.Path())
def report(run_dir):
    """Regenerate report.md, report.html and pareto.png of RUN_DIR.

    \b
    Example:
        edgeopt report runs/digits
    """
    from edgeopt.pipeline.compare import checked_run_dir
    from edgeopt.pipeline.report import markdown_table, write_report

    click.echo(markdown_table(write_report(checked_run_dir(run_dir))))


@click.command()
@click.argument("run_a", type=click.Path())
@click.argument("run_b", type=click.Path())
@json_option("the differences")
def compare(run_a, run_b, as_json):
    """Print the differences between two runs (accuracy, size, latency per row).

    \b
    Example:
        edgeopt compare runs/digits-monday runs/digits-tuesday
    """
    from edgeopt.pipeline.compare import compare_runs

    diffs = compare_runs(run_a, run_b)
    if as_json:
        echo_json(diffs)
        return

    def cell(entry, field, scale=1.0, spec=".2f"):
        a, b, d = (entry[field][k] for k in ("a", "b", "delta"))
        fmt = lambda v: "–" if v is None else format(v * scale, spec)  # noqa: E731
        return f"{fmt(a)} -> {fmt(b)}" + (f" ({d * scale:+{spec}})" if d is not None else "")

    click.echo(table(["variant", "precision", "device", "accuracy %", "size KiB", "p50 ms", "note"],
                     [[e["variant"], e["precision"], e["device"] or "–", cell(e, "accuracy", 100),
                       cell(e, "size_bytes", 1 / 1024, ".1f"), cell(e, "p50_ms", 1, ".3f"),
                       f"only in {e['only_in']}" if e["only_in"] else ""] for e in diffs]))
