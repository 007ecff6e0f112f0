"""The run report: every variant × precision × device, the Pareto front, a plot.

`report.md` and a self-contained `report.html` (the plot is embedded; nothing is
fetched at view time), plus `pareto.png`. A row is on the Pareto front when no other
row of the same device is at least as good on size, accuracy and latency at once and
better on one of them.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeopt._files import atomic_write_text
from edgeopt._reporting import embedded_png, fmt as _fmt, html_table, markdown_table as _markdown_table, pyplot
from edgeopt._reporting import save_figure
from edgeopt.pipeline.readers import load_bench_results, load_export_report, load_manifest


@dataclass
class Row:
    variant: str
    precision: str
    device: str | None
    accuracy: float | None
    accuracy_drop_points: float | None
    size_bytes: int | None  # None for a precision that failed to convert
    gzip_size_bytes: int | None
    compression: float | None
    p50_ms: float | None
    p90_ms: float | None
    speedup: float | None
    status: str
    pareto: bool = False


def collect_rows(run_dir: str | Path) -> list[Row]:
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    variants = [v["name"] for v in manifest["recipe"]["variants"]]
    raw = []
    for name in variants:
        report_path = run_dir / name / "export_report.json"
        if not report_path.is_file():
            continue
        export = load_export_report(report_path)
        bench_path = run_dir / name / "bench.json"
        bench = load_bench_results(bench_path) if bench_path.is_file() else []
        for entry in export["entries"]:
            if entry.get("status") == "failed":  # shown, so a precision never silently disappears
                raw.append(dict(variant=name, precision=entry["precision"], device=None, accuracy=None,
                                size_bytes=None, gzip_size_bytes=None, p50_ms=None, p90_ms=None, status="failed"))
                continue
            if not entry.get("size_bytes"):
                continue
            accuracy = (entry.get("validation") or {}).get("accuracy")
            rel = f"{name}/{Path(entry['path']).name}"
            results = [b for b in bench if b["model"] == rel and b["status"] == "ok"] or [None]
            for result in results:
                raw.append(dict(variant=name, precision=entry["precision"], device=result and result["device"],
                                accuracy=accuracy, size_bytes=entry["size_bytes"],
                                gzip_size_bytes=entry["gzip_size_bytes"], p50_ms=result and result.get("p50_ms"),
                                p90_ms=result and result.get("p90_ms"), status=entry["status"]))
    base_name = "baseline" if "baseline" in variants else (variants[0] if variants else None)
    base = {r["device"]: r for r in raw if r["variant"] == base_name and r["precision"] == "float32"}
    any_base = next(iter(base.values()), None)
    rows = []
    for r in raw:
        ref = base.get(r["device"]) or any_base
        drop = None
        if ref and ref["accuracy"] is not None and r["accuracy"] is not None:
            drop = round(100 * (ref["accuracy"] - r["accuracy"]), 2)
        rows.append(Row(**r, accuracy_drop_points=drop,
                        compression=round(ref["size_bytes"] / r["size_bytes"], 2) if ref and r["size_bytes"] else None,
                        speedup=round(ref["p50_ms"] / r["p50_ms"], 2) if ref and ref["p50_ms"] and r["p50_ms"] else None))
    _mark_pareto(rows)
    return rows


def _mark_pareto(rows: list[Row]) -> None:
    def key(row):  # smaller is better on every axis; missing figures do not count
        return (row.gzip_size_bytes, -(row.accuracy if row.accuracy is not None else 0.0),
                row.p50_ms if row.p50_ms is not None else 0.0)

    for row in rows:
        if row.status != "ok":
            continue
        rivals = [o for o in rows if o is not row and o.device == row.device and o.status == "ok"]
        row.pareto = not any(all(a <= b for a, b in zip(key(o), key(row))) and key(o) != key(row) for o in rivals)


def _kib(size_bytes: int | None) -> str:
    return "–" if size_bytes is None else f"{size_bytes / 1024:.1f} KiB"


HEADERS = ["variant", "precision", "device", "accuracy", "drop (pts)", "size", "gzip", "compression", "p50 ms",
           "p90 ms", "speed-up", "Pareto"]


def _cells(row: Row) -> list[str]:
    return [row.variant, row.precision + ("" if row.status == "ok" else f" ({row.status})"), row.device or "–",
            _fmt(row.accuracy and 100 * row.accuracy, ".2f") + ("%" if row.accuracy is not None else ""),
            _fmt(row.accuracy_drop_points, "+.2f"), _kib(row.size_bytes), _kib(row.gzip_size_bytes),
            _fmt(row.compression, ".2f") + ("×" if row.compression else ""),
            _fmt(row.p50_ms, ".3f"), _fmt(row.p90_ms, ".3f"),
            _fmt(row.speedup, ".2f") + ("×" if row.speedup else ""), "★" if row.pareto else ""]


def markdown_table(rows: list[Row]) -> str:
    return _markdown_table(HEADERS, [_cells(r) for r in rows])


def plot_pareto(rows: list[Row], path: Path) -> bool:
    """Gzip size vs accuracy, one marker per variant × precision, the front connected."""
    points = [r for r in rows if r.accuracy is not None and r.status == "ok"]
    if not points:
        return False
    plt = pyplot()
    seen, unique = set(), []
    for r in points:  # one marker per variant × precision (devices share size and accuracy)
        if (r.variant, r.precision) not in seen:
            seen.add((r.variant, r.precision))
            unique.append(r)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for r in unique:
        ax.scatter(r.gzip_size_bytes / 1024, 100 * r.accuracy, s=40, marker="*" if r.pareto else "o",
                   color="tab:red" if r.pareto else "tab:blue", zorder=3)
        ax.annotate(f"{r.variant}/{r.precision}", (r.gzip_size_bytes / 1024, 100 * r.accuracy), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    front = sorted((r for r in unique if r.pareto), key=lambda r: r.gzip_size_bytes)
    if front:
        ax.plot([r.gzip_size_bytes / 1024 for r in front], [100 * r.accuracy for r in front], color="tab:red", lw=1,
                zorder=2, label="Pareto front")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("gzip size (KiB, log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    save_figure(fig, path)
    return True


def scratch_lines(manifest: dict, rows: list[Row]) -> list[str]:
    """One line per distilled variant and precision: its accuracy against its
    from-scratch twin's (`techniques.scratch_twins`), so the report says whether
    distillation paid off."""
    accuracy = {(r.variant, r.precision): r.accuracy for r in rows if r.status == "ok"}
    lines = []
    for twin in manifest["recipe"]["variants"]:
        source = twin.get("scratch_of")
        if not source:
            continue
        for precision in dict.fromkeys(r.precision for r in rows if r.variant == source):
            ours, scratch = accuracy.get((source, precision)), accuracy.get((twin["name"], precision))
            if ours is None or scratch is None:
                continue
            delta = 100 * (ours - scratch)
            verdict = "paid off" if delta > 0 else "did not pay off" if delta < 0 else "made no difference"
            lines.append(f"- `{source}` {precision}: {100 * ours:.2f}% distilled vs {100 * scratch:.2f}% from scratch "
                         f"(`{twin['name']}`): {delta:+.2f} points, distillation {verdict}")
    return lines


def write_report(run_dir: str | Path) -> list[Row]:
    """(Re)writes report.md, report.html and pareto.png from a run directory."""
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    rows = collect_rows(run_dir)
    has_plot = plot_pareto(rows, run_dir / "pareto.png")
    stages = manifest["stages"]
    timing = "\n".join(f"| {k} | {v['status']} | {v.get('seconds', 0):.1f} |" for k, v in stages.items())
    failures = [f"- `{k}`: {v.get('error', '')}" for k, v in stages.items() if v["status"] != "done"]
    title = f"edgeopt run: {manifest['recipe']['name']}"
    md = [f"# {title}", "", f"Status: **{manifest['status']}** · updated {manifest.get('updated', '?')}", "",
          markdown_table(rows), "", "★ = on the Pareto front: no other row of the same device is at least as small (gzip "
          "size: what pruning and clustering shrink), accurate and fast, and better on one. Drop and speed-up are against the baseline's float32 model.", ""]
    versus = scratch_lines(manifest, rows)
    if versus:
        md += ["## Distilled vs from scratch", "", "Each `-scratch` row trains the distilled student's architecture on "
               "the labels alone, for the same epochs.", "", *versus, ""]
    if has_plot:
        md += ["![size vs accuracy](pareto.png)", ""]
    if failures:
        md += ["## Failures", "", *failures, ""]
    md += ["## Stages", "", "| stage | status | seconds |", "|---|---|---|", timing, ""]
    atomic_write_text(run_dir / "report.md", "\n".join(md))
    image = embedded_png(run_dir / "pareto.png", "size vs accuracy") if has_plot else ""
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:right}td:first-child,td:nth-child(2),td:nth-child(3){text-align:left}"
            f"</style></head><body><h1>{html.escape(title)}</h1><p>Status: {html.escape(manifest['status'])}</p>"
            f"{html_table(HEADERS, [_cells(r) for r in rows])}<p>★ = on the Pareto front.</p>{image}"
            + "".join(f"<p>{html.escape(line[2:])}</p>" for line in versus)
            + "".join(f"<p>{html.escape(f)}</p>" for f in failures) + "</body></html>")
    atomic_write_text(run_dir / "report.html", page)
    atomic_write_text(run_dir / "report.json", json.dumps([asdict(r) for r in rows], indent=2))
    return rows
