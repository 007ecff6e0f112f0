"""`edgeopt search` on the command line: bad input is one line and exit 1, before any
training; its flags default to `run_search`'s arguments."""

from __future__ import annotations

import inspect

import pytest
from click.testing import CliRunner

from edgeopt.cli import cli
from edgeopt.search.study import run_search
from tests.search.conftest import TINY, write_recipe


def invoke(*args):
    return CliRunner().invoke(cli, ["search", *map(str, args)])


def one_line_error(result, start):
    assert result.exit_code == 1, result.output
    error = result.stderr.strip()
    assert "\n" not in error and "Traceback" not in result.output
    assert error.startswith(f"Error: {start}"), error
    return error


def test_help_has_an_example():
    result = invoke("--help")
    assert result.exit_code == 0 and "Example" in result.output and "--trials" in result.output


def test_flag_defaults_are_run_searchs():
    parameters = inspect.signature(run_search).parameters
    options = {p.name: p.default for p in cli.commands["search"].params}
    for name in ("workers", "storage", "timeout_s", "unsafe"):
        assert options[name] == parameters[name].default, name


@pytest.mark.parametrize("args, start", [
    (["--trials", "0"], "trials must be an integer >= 1 (the study's total). Received: trials=0."),
    (["--trials", "2", "--workers", "0"], "workers must be an integer >= 1. Received: workers=0."),
    (["--trials", "2", "--timeout-s", "-5"], "timeout_s must be a number of seconds > 0"),
    (["--trials", "2", "--storage", "mysql://u@h/db"], "Unsupported --storage. Received: 'mysql://u@h/db'"),
    (["--trials", "2", "--storage", "sqlite://"], "--storage needs an SQLite file, not an in-memory database"),
    (["--trials", "2", "--storage", "not a url"], "--storage is not a database URL. Received: 'not a url'"),
])
def test_bad_arguments_are_one_line(tmp_path, args, start):
    out = tmp_path / "out"
    one_line_error(invoke(write_recipe(tmp_path), *args, "--out", out), start)
    assert not out.exists()  # nothing written, nothing trained


def test_a_password_in_the_storage_url_is_never_shown(tmp_path):
    error = one_line_error(invoke(write_recipe(tmp_path), "--trials", "2", "--out", tmp_path / "o", "--storage",
                                  "postgresql+nodriver://me:s3cret@127.0.0.1:1/db"), "")
    assert "s3cret" not in error


def test_a_recipe_without_a_search_section_is_one_line(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text("model: {builder: 'edgeopt.models:digits_cnn'}\n")
    one_line_error(invoke(path, "--trials", "2", "--out", tmp_path / "o"), "The recipe has no search section.")


def test_a_bad_search_section_is_one_line(tmp_path):
    recipe = write_recipe(tmp_path, search={"budget": {"max_size_kb": "small"}})
    one_line_error(invoke(recipe, "--trials", "2", "--out", tmp_path / "o"),
                   f"{recipe}: search.budget.max_size_kb must be a number > 0 (KiB)")
    assert TINY["search"]["budget"] == {"max_accuracy_drop": 50.0}  # the shared template is untouched
