"""The conformance matrix's table is complete, and README.md's "Supported architectures" says the same."""

from __future__ import annotations

from pathlib import Path

from edgeopt import EdgeoptError
from tests.conformance.matrix import CAPABILITIES, EXPECTED, MODELS, OK, Partial, Xfail

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_table() -> dict[tuple[str, str], list[str]]:
    section = README.read_text().split("## Supported architectures", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header == ["model", "Keras", *CAPABILITIES]
    table = {}
    for row in rows[1:]:
        name, flavour, *cells = [cell.strip() for cell in row.strip("|").split("|")]
        table[name, flavour] = cells
    return table


def test_the_readme_table_matches_the_matrix():
    table = readme_table()
    assert list(table) == MODELS
    for (name, flavour), cells in table.items():
        for capability, cell in zip(CAPABILITIES, cells):
            expected = EXPECTED[name, flavour, capability]
            where = f"README cell {name}/{flavour}/{capability}: {cell!r} vs {expected!r}"
            if expected == OK:
                assert cell == "✓", where
            elif isinstance(expected, Xfail):
                assert cell.startswith("xfail"), where
            elif isinstance(expected, Partial):
                assert cell.startswith("✓ but " + ", ".join(sorted(expected.failed))), where
            else:
                assert cell.split(" ")[0] == expected[0].__name__, where


def test_expected_names_every_cell_and_nothing_else():
    cells = {(name, flavour, capability) for name, flavour in MODELS for capability in CAPABILITIES}
    assert set(EXPECTED) == cells
    for value in EXPECTED.values():
        assert value == OK or isinstance(value, (Xfail, Partial)) or (
            isinstance(value, tuple) and issubclass(value[0], EdgeoptError) and value[1]), value
