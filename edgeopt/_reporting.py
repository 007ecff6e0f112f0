"""What the run report (`pipeline.report`) and the search report (`search.report`) are
both made of: table cells, markdown and HTML tables, a figure saved as PNG and embedded."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Sequence

from edgeopt._files import atomic_write_bytes

MISSING = "–"  # a figure that was not measured


def fmt(value: Any, spec: str) -> str:
    """`value` formatted by `spec`, or `MISSING` for `None`."""
    return MISSING if value is None else format(value, spec)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table; a `|` inside a cell is escaped."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in rows]
    return "\n".join(lines)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML `<table>`, every cell escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed), imported when a plot is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> None:
    """Lays `fig` out, writes it to `path` as PNG (temp + rename) and closes it."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def embedded_png(path: Path, alt: str) -> str:
    """An `<img>` holding the PNG at `path`, so the page fetches nothing when viewed."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'
