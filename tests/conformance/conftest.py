"""The conformance modules' shared models."""

from __future__ import annotations

import pytest

from tests.conformance import zoo


@pytest.fixture(scope="module")
def shared():
    """`shared(name, flavour)`: one model per architecture for the whole module; never mutated."""
    cache: dict = {}

    def get(name, flavour):
        if (name, flavour) not in cache:
            cache[name, flavour] = zoo.build(name, flavour)
        return cache[name, flavour]

    return get
