"""The storage bundle's own contract, run on every backend of ``tests/backends.py``.

The ``storage`` fixture of ``tests/conftest.py`` opens each of those backends in turn.
"""

from __future__ import annotations

import pytest

from tests.contract.base import StorageContract

pytestmark = pytest.mark.contract


class TestStorage(StorageContract):
    """Each test runs once per backend: ``storage`` is parametrized over them."""
