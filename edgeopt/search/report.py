"""The search report: every trial, the Pareto front, the best model for the budget.

Written into the search directory: `report.md`, a self-contained `report.html`,
`report.json`, `trials.png` (every trial: accuracy against size and against latency,
the front highlighted, the budget drawn), and for the budget `best.tflite` with its
`export_report.json`: the trial meeting every limit that is smallest, then most
accurate, then fastest. When none meets it the report names the closest trial and
what it missed, by how much, and no `best.tflite` is left behind.
"""

from __future__ import annotations

import html
import json
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeopt._files import atomic_write_bytes, atomic_write_text
from edgeopt._reporting import embedded_png, fmt, html_table, markdown_table as _markdown_table, pyplot, save_figure
from edgeopt.search.budget import Budget

BEST = "best.tflite"
EXPORT_REPORT = "export_report.json"


@dataclass
class TrialRow:
    number: int
    state: str
    params: dict
    accuracy: float | None = None
    accuracy_drop_points: float | None = None
    size_bytes: int | None = None
    gzip_size_bytes: int | None = None
    size_kb: float | None = None
    p50_ms: float | None = None
    meets_budget: bool | None = None
    pareto: bool = False
    note: str = ""
    host: str | None = None
    pid: int | None = None
    tflite: str | None = None
    duplicate_of: int | None = None  # the trial whose results this one reused

    @property
    def measured(self) -> bool:
        return self.state == "COMPLETE" and None not in (self.accuracy_drop_points, self.size_kb, self.p50_ms)

    def key(self) -> tuple:
        return self.accuracy_drop_points, self.size_kb, self.p50_ms


@dataclass
class SearchReport:
    rows: list[TrialRow]
    best: TrialRow | None
    closest: TrialRow | None
    message: str
    counts: dict = field(default_factory=dict)
    best_path: str | None = None


def collect_rows(trials: list[Any], budget: Budget) -> list[TrialRow]:
    """One row per Optuna trial, sizes counted as `budget.size` says, the front marked."""
    rows = []
    for trial in sorted(trials, key=lambda t: t.number):
        attrs = trial.user_attrs
        metrics = attrs.get("metrics") or {}
        row = TrialRow(number=trial.number, state=trial.state.name, params=attrs.get("params") or dict(trial.params),
                       host=attrs.get("host"), pid=attrs.get("pid"), tflite=attrs.get("tflite"),
                       duplicate_of=attrs.get("duplicate_of"))
        if metrics:
            row.accuracy, row.accuracy_drop_points = metrics.get("accuracy"), metrics.get("accuracy_drop_points")
            row.size_bytes, row.gzip_size_bytes = metrics.get("size_bytes"), metrics.get("gzip_size_bytes")
            if row.size_bytes is not None and row.gzip_size_bytes is not None:
                row.size_kb = budget.size_kb(row.size_bytes, row.gzip_size_bytes)
            row.p50_ms = metrics.get("p50_ms")
        if row.measured:
            row.meets_budget = budget.is_met(_metrics(row))
        notes = [attrs.get(k) for k in ("stopped", "error", "interrupted") if attrs.get(k)]
        if "duplicate_of" in attrs:
            notes.append(f"same values as trial {attrs['duplicate_of']}, results reused")
        row.note = "; ".join(str(n) for n in notes)
        rows.append(row)
    measured = [r for r in rows if r.measured and r.duplicate_of is None]  # a repeat is not another point
    for row in measured:
        row.pareto = not any(all(a <= b for a, b in zip(o.key(), row.key())) and o.key() != row.key()
                             for o in measured if o is not row)
    return rows


def _metrics(row: TrialRow) -> dict:
    return {"accuracy_drop_points": row.accuracy_drop_points, "size_kb": row.size_kb, "p50_ms": row.p50_ms}


def pick(rows: list[TrialRow], budget: Budget) -> tuple[TrialRow | None, TrialRow | None, str]:
    """`(best, closest, message)`: the best trial meeting every limit (smallest, then most
    accurate, then fastest) or, when none does, the closest miss and what it missed."""
    measured = [r for r in rows if r.measured]
    meeting = [r for r in measured if r.meets_budget]
    limits = ", ".join(f"{k} {v:g}" for k, v in budget.limits.items()) or "no limits"
    if meeting:
        best = min(meeting, key=lambda r: (r.size_kb, r.accuracy_drop_points, r.p50_ms, r.number))
        return best, None, (f"Best for the budget ({limits}): trial {best.number} ({describe(best.params)}): "
                            f"accuracy drop {best.accuracy_drop_points:+.2f} points, {best.size_kb:.2f} KiB "
                            f"{budget.size}, p50 {best.p50_ms:.4f} ms.")
    states = {}
    for r in rows:
        states[r.state] = states.get(r.state, 0) + 1
    tally = ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())) or "none"
    if not measured:
        return None, None, (f"No trial meets the budget ({limits}): no trial finished ({tally}). See report.md for "
                            "why they stopped or failed; loosen the budget or widen the space, then rerun with more "
                            "--trials.")
    closest = min(measured, key=lambda r: (budget.shortfall(_metrics(r)), r.number))
    return None, closest, (f"No trial meets the budget ({limits}) after {len(rows)} trials ({tally}). Closest: trial "
                           f"{closest.number} ({describe(closest.params)}): {budget.describe_miss(_metrics(closest))}. "
                           "Loosen that limit, widen the space, or rerun with more --trials.")


def describe(params: dict) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def write_report(out_dir: Path, trials: list[Any], budget: Budget, baseline: dict, info: dict) -> SearchReport:
    """Writes the report files and `best.tflite`; returns what they say."""
    rows = collect_rows(trials, budget)
    best, closest, message = pick(rows, budget)
    counts = {"total": len(rows)}
    for r in rows:
        counts[r.state.lower()] = counts.get(r.state.lower(), 0) + 1
    report = SearchReport(rows, best, closest, message, counts)
    _place_best(out_dir, best, report)
    has_plot = _plot(rows, budget, baseline, out_dir / "trials.png")
    atomic_write_text(out_dir / "report.md", _markdown(report, budget, baseline, info, has_plot))
    atomic_write_text(out_dir / "report.html", _html(report, budget, baseline, info, out_dir, has_plot))
    atomic_write_text(out_dir / "report.json", json.dumps(
        {**info, "baseline": baseline, "budget": budget.to_dict(), "message": message, "counts": counts,
         "best": best and asdict(best), "closest": closest and asdict(closest),
         "trials": [asdict(r) for r in rows]}, indent=2, default=str))
    return report


def _place_best(out_dir: Path, best: TrialRow | None, report: SearchReport) -> None:
    target = out_dir / BEST
    if best is None:
        for stale in (target, out_dir / EXPORT_REPORT):  # an earlier budget's best is not this one's
            stale.unlink(missing_ok=True)
        return
    from edgeopt.convert.inspect import parse_model
    from edgeopt.errors import EdgeoptError

    for stale in (target, out_dir / EXPORT_REPORT):  # an earlier best is not this one
        stale.unlink(missing_ok=True)
    source = _own_file(out_dir, best.tflite)
    if source is None:  # another machine's (or search directory's) trial: its path is only reported
        where = f" on host {best.host}" if best.host and best.host != socket.gethostname() else ""
        report.message += f" Its model is not in this search directory: {best.tflite}{where}."
        return
    data = source.read_bytes()
    try:
        parse_model(data, origin=str(source))  # a .tflite, not whatever a shared study's record points at
    except EdgeoptError as exc:
        report.message += f" Its file is not a valid .tflite, so no best.tflite was written: {exc}"
        return
    atomic_write_bytes(target, data)
    if (source.parent / EXPORT_REPORT).is_file():
        atomic_write_bytes(out_dir / EXPORT_REPORT, (source.parent / EXPORT_REPORT).read_bytes())
    report.best_path = str(target)
    report.message += f" Saved as {target} (with {EXPORT_REPORT})."


def _own_file(out_dir: Path, recorded: str | None) -> Path | None:
    """The recorded .tflite when it is a file under this directory's `trials/` (a study
    shared through a database is not trusted to name any other file), else None."""
    if not isinstance(recorded, str) or not recorded or "\x00" in recorded:
        return None
    path = Path(recorded).resolve()
    trials = (out_dir / "trials").resolve()
    return path if path.is_file() and path.suffix == ".tflite" and trials in path.parents else None


HEADERS = ["trial", "state", "values", "accuracy", "drop (pts)", "size KiB", "p50 ms", "budget", "front", "note"]


def _cells(row: TrialRow) -> list[str]:
    return [str(row.number), row.state.lower(), describe(row.params),
            fmt(row.accuracy and 100 * row.accuracy, ".2f"), fmt(row.accuracy_drop_points, "+.2f"),
            fmt(row.size_kb, ".2f"), fmt(row.p50_ms, ".4f"),
            {True: "✓", False: "✗", None: "–"}[row.meets_budget], "★" if row.pareto else "", row.note]


def markdown_table(rows: list[TrialRow]) -> str:
    return _markdown_table(HEADERS, [_cells(r) for r in rows])


def _summary(report: SearchReport, budget: Budget, baseline: dict, info: dict) -> list[str]:
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items() if k != "total")
    return [f"Study `{info.get('study')}` in `{info.get('storage')}`: {report.counts['total']} trials ({counts}).",
            f"Baseline (trained model, float32): accuracy {100 * baseline['accuracy']:.2f}%, "
            f"{baseline['gzip_size_bytes'] / 1024:.2f} KiB gzip, {baseline['size_bytes'] / 1024:.2f} KiB raw, "
            f"p50 {baseline['p50_ms']:.4f} ms on {baseline.get('device')}.",
            "Budget: " + (", ".join(f"{k} = {v:g}" for k, v in budget.limits.items()) or "none")
            + f" (size counted {budget.size}).", "", f"**{report.message}**"]


def _markdown(report, budget, baseline, info, has_plot) -> str:
    front = [r for r in report.rows if r.pareto]
    md = [f"# edgeopt search: {info.get('study')}", "", *_summary(report, budget, baseline, info), "",
          "## Pareto front", "", "No trial is at least as good on accuracy drop, size and p50 latency at once and "
          "better on one.", "", markdown_table(sorted(front, key=lambda r: r.size_kb)), ""]
    if has_plot:
        md += ["![every trial](trials.png)", ""]
    md += ["## Every trial", "", markdown_table(report.rows), ""]
    return "\n".join(md)


def _html(report, budget, baseline, info, out_dir, has_plot) -> str:
    def table(rows):
        return html_table(HEADERS, [_cells(r) for r in rows])

    image = embedded_png(out_dir / "trials.png", "every trial") if has_plot else ""
    summary = "".join(f"<p>{html.escape(line.strip('*'))}</p>" for line in _summary(report, budget, baseline, info)
                      if line)
    title = html.escape(f"edgeopt search: {info.get('study')}")
    front = sorted((r for r in report.rows if r.pareto), key=lambda r: r.size_kb)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>body{{font-family:"
            "sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
            f"</style></head><body><h1>{title}</h1>{summary}<h2>Pareto front</h2>{table(front)}{image}"
            f"<h2>Every trial</h2>{table(report.rows)}</body></html>")


def _plot(rows: list[TrialRow], budget: Budget, baseline: dict, path: Path) -> bool:
    """Accuracy against size and against p50, every measured trial; the front in red."""
    points = [r for r in rows if r.measured and r.accuracy is not None]
    if not points:
        path.unlink(missing_ok=True)
        return False
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110, sharey=True)
    for ax, attr, label, limit in ((axes[0], "size_kb", f"{budget.size} size (KiB, log scale)", budget.max_size_kb),
                                   (axes[1], "p50_ms", "p50 latency (ms, log scale)", budget.max_latency_ms)):
        others = [r for r in points if not r.pareto]
        ax.scatter([getattr(r, attr) for r in others], [100 * r.accuracy for r in others], s=28, color="tab:blue",
                   alpha=0.7, label="trial", zorder=3)
        front = sorted((r for r in points if r.pareto), key=lambda r: getattr(r, attr))
        ax.scatter([getattr(r, attr) for r in front], [100 * r.accuracy for r in front], s=60, marker="*",
                   color="tab:red", label="Pareto front", zorder=4)
        for r in front:
            ax.annotate(str(r.number), (getattr(r, attr), 100 * r.accuracy), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        if limit is not None:
            ax.axvline(limit, color="grey", ls="--", lw=1, label="budget")
        if budget.max_accuracy_drop is not None:
            ax.axhline(100 * baseline["accuracy"] - budget.max_accuracy_drop, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("accuracy (%, LiteRT)")
    axes[0].legend(loc="lower right", fontsize=8)
    save_figure(fig, path)
    return True
