"""The conformance matrix's tf_keras cells (see `matrix.py`); one module per flavour, so
the two can run on different test workers."""

from __future__ import annotations

import pytest

from tests.conformance.matrix import TF_KERAS, cells, check_cell

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name, flavour, capability", list(cells(TF_KERAS)))
def test_cell(shared, tmp_path, name, flavour, capability):
    check_cell(shared, tmp_path, name, flavour, capability)
