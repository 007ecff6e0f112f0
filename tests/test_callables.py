"""`resolve_callable`: `package.module:attribute` to the object, or one clear ConfigError."""

from __future__ import annotations

import os.path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeopt._callables import resolve_callable
from edgeopt.errors import ConfigError


def test_resolves_module_attributes():
    assert resolve_callable("os.path:join", "data.loader") is os.path.join


@pytest.mark.parametrize("spec, message", [
    ("os.path.join", "data.loader must be 'package.module:function'. Received: 'os.path.join'."),
    (None, "data.loader must be 'package.module:function'. Received: None."),
    ("no_such_module_x:f", "data.loader: module 'no_such_module_x' does not import. Received: 'no_such_module_x:f'"),
    (":f", "data.loader: module '' does not import. Received: ':f'"),
    (".rel:f", "data.loader: module '.rel' does not import. Received: '.rel:f'"),
    ("os.path:nope", "data.loader: module 'os.path' has no attribute 'nope'. Received: 'os.path:nope'."),
])
def test_bad_specs_name_the_part_that_failed(spec, message):
    with pytest.raises(ConfigError) as caught:
        resolve_callable(spec, "data.loader")
    assert str(caught.value).startswith(message)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(alphabet="abc_.:xyz ", max_size=20), st.integers(), st.none()))
def test_any_spec_is_an_object_or_a_config_error(spec):
    try:
        resolve_callable(spec, "model.builder")
    except ConfigError as exc:
        assert "model.builder" in str(exc) and "Received:" in str(exc)
