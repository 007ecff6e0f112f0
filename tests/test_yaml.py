"""`edgeopt._yaml`: hostile YAML (alias bombs, deep nesting, binary files, odd bytes)
fails fast with one `ConfigError` line, for recipes and device profiles alike."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from edgeopt._yaml import MAX_DEPTH, parse_yaml, read_yaml
from edgeopt.bench.profiles import load_profile
from edgeopt.errors import ConfigError
from edgeopt.pipeline.recipe import load_recipe


def laughs(levels: int = 9, width: int = 9, indent: str = "") -> str:
    """`l0: &l0 [lol, …]`, `l1: &l1 [*l0, *l0, …]`, …: width**levels items once expanded."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


RECIPE = "name: t\nmodel:\n  builder: edgeopt.models:digits_cnn\n  kwargs:\n    width: 4\n    extra:\n{bomb}"


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def fast(call, limit_s: float = 1.0):
    started = time.perf_counter()
    with pytest.raises(ConfigError) as exc:
        call()
    assert time.perf_counter() - started < limit_s
    return one_line(exc)


def test_alias_bomb_in_recipe_model_kwargs(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(RECIPE.format(bomb=laughs(indent="      ")))
    message = fast(lambda: load_recipe(path, check_devices=False))
    assert "expands too much" in message and "bomb.yaml" in message


CHILD = """
import sys, time
from edgeopt.bench.profiles import load_profile
from edgeopt.errors import ConfigError
started = time.perf_counter()
try:
    load_profile(sys.argv[1])
except ConfigError as exc:
    print(f"{time.perf_counter() - started:.3f} {exc}")
"""


def test_alias_bomb_in_device_profile_env(tmp_path):
    path = tmp_path / "pi.yaml"
    path.write_text("transport: local\nenv:\n" + laughs(indent="  "))
    # In a child process, so that a loader without limits fails the test instead of hanging it.
    try:
        child = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("loading the profile hung for 60 s")
    seconds, _, message = child.stdout.strip().partition(" ")
    assert child.returncode == 0 and float(seconds) < 1.0, child.stdout + child.stderr
    assert "expands too much" in message and "pi.yaml" in message and "\n" not in message


def test_merge_key_bomb_is_refused():
    text = "m0: &m0 {a: 1, b: 2}\n" + "".join(
        f"m{i}: &m{i} {{<<: [*m{i - 1}], k{i}: [*m{i - 1}, *m{i - 1}]}}\n" for i in range(1, 30))
    assert "expands too much" in fast(lambda: parse_yaml(text))


def test_recursive_alias_is_refused():
    assert "contains itself" in fast(lambda: parse_yaml("a: &a {b: *a}"))
    assert "contains itself" in fast(lambda: parse_yaml("&a [1, [*a]]"))


def test_modest_aliases_and_merges_still_work():
    text = "defaults: &d {epochs: 3, lr: 0.1}\na: {<<: *d, epochs: 5}\nb: [*d, *d]\n" + laughs(levels=3, width=5)
    data = parse_yaml(text)
    assert data["a"] == {"epochs": 5, "lr": 0.1} and data["b"] == [data["defaults"]] * 2
    assert len(data["l2"]) == 5 and data["l2"][0][0] == ["lol"] * 5


@pytest.mark.parametrize("text", ["[" * 20000 + "]" * 20000, "{a: " * 20000 + "}" * 20000,
                                  "".join(f"{' ' * i}a:\n" for i in range(500)) + " " * 500 + "x"],
                         ids=["flow-sequences", "flow-mappings", "block-mappings"])
def test_deep_nesting_is_one_line(tmp_path, text):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    assert "nested too deeply" in fast(lambda: read_yaml(path, "Recipe"), limit_s=5)
    assert "nested too deeply" in fast(lambda: load_recipe(path), limit_s=5)


def test_nesting_just_inside_the_limit_loads():
    assert parse_yaml("[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1)) is not None


@pytest.mark.parametrize("data, expected", [
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary file"),
    (b"name: caf\xe9\n", "not UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    (b"a: \x07\n", "does not parse"),
])
def test_binary_and_non_utf8_files(tmp_path, data, expected):
    path = tmp_path / "model.yaml"
    path.write_bytes(data)
    assert expected in fast(lambda: load_recipe(path))
    assert expected in fast(lambda: load_profile(path))


def test_utf8_bom_is_accepted():
    assert parse_yaml("\ufeffname: t\n".encode()) == {"name": "t"}


@pytest.mark.parametrize("text, expected", [
    ("a: 2020-13-45", "does not convert"),
    ("a: !!int 0xZZ", "does not convert"),
    ("a: !!python/name:os.system", "does not parse"),
    ("{a: 1, a: 2}", "duplicate key"),
    ("a: 1\n---\nb: 2", "does not parse"),
])
def test_bad_values_are_one_line(text, expected):
    assert expected in fast(lambda: parse_yaml(text))


def test_merged_keys_may_be_overridden():
    assert parse_yaml("d: &d {x: 1}\ne: {<<: *d, x: 2}")["e"] == {"x": 2}


def test_too_large_file(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * (1 << 21))
    assert "too large" in fast(lambda: read_yaml(path, "Recipe"))


FAST = settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_config_error(data):
    try:
        parse_yaml(data, origin="x.yaml")
    except ConfigError as exc:
        assert "\n" not in str(exc)


YAML_BITS = st.sampled_from(["a", ":", " ", "\n", "-", "[", "]", "{", "}", ",", "&x", "*x", "&y", "*y", "<<", "!!",
                             "!!int", "!!float", "!!timestamp", "!!binary", "!!set", "?", "'", '"', "#", "|", ">",
                             "2020-13-45", "0x", "1e9999", "---", "...", "%YAML 1.1", "\t", "\\", "\ufeff", "é"])


@FAST
@given(st.lists(YAML_BITS, max_size=40).map("".join) | st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_config_error(text):
    try:
        parse_yaml(text, origin="x.yaml")
    except ConfigError as exc:
        assert "\n" not in str(exc)
