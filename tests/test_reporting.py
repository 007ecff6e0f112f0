"""The pieces both reports are made of (`edgeopt._reporting`), and `parse_choice`."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, strategies as st

from edgeopt import ConfigError
from edgeopt._checks import parse_choice
from edgeopt._compat import StrEnum
from edgeopt._reporting import embedded_png, fmt, html_table, markdown_table, pyplot, save_figure
from edgeopt.pipeline import report as run_report
from edgeopt.search import report as search_report


def test_cells_and_tables():
    assert fmt(None, ".2f") == "–" and fmt(1.234, ".2f") == "1.23" and fmt(0.5, "+.2f") == "+0.50"
    assert markdown_table(["a", "b"], [["1", "x|y"]]) == "| a | b |\n|---|---|\n| 1 | x\\|y |"
    assert html_table(["a"], [["<b>"]]) == "<table><tr><th>a</th></tr><tr><td>&lt;b&gt;</td></tr></table>"


@given(st.lists(st.lists(st.text(max_size=6), min_size=2, max_size=2), max_size=4))
def test_a_markdown_table_has_one_line_per_row_and_its_columns(rows):
    rows = [[c.replace("\n", " ").replace("\r", " ") for c in r] for r in rows]
    lines = markdown_table(["a", "b"], rows).split("\n")
    assert len(lines) == 2 + len(rows)
    for line in lines:  # unescaped bars are the column borders only
        assert line.replace("\\|", "").count("|") == 3


def test_both_reports_build_their_tables_here():
    for module in (run_report, search_report):
        assert module._markdown_table is markdown_table


def test_a_figure_is_written_whole_and_embedded(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    save_figure(fig, tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG") and not list(tmp_path.glob(".*"))
    assert not plt.get_fignums()  # closed
    assert embedded_png(tmp_path / "f.png", 'a "b"').startswith('<img alt="a &quot;b&quot;" src="data:image/png;base64,')


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@pytest.mark.parametrize("value", ["green", "", None, 3, ["red"], {"red": 1}])
def test_parse_choice_names_the_argument_and_every_choice(value):
    message = f"Unknown colour. Received: colour={value!r}. Use one of: red, blue."
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        parse_choice(Colour, value, argument="colour")
    assert parse_choice(Colour, "blue", argument="colour") is Colour.BLUE
