"""The API-keys port's contract, run on every backend of ``tests/backends.py``.

The ``storage`` fixture of ``tests/conftest.py`` opens each of those backends in turn.
"""

from __future__ import annotations

import pytest

from tests.contract.api_keys import ApiKeysContract

pytestmark = pytest.mark.contract


class TestApiKeys(ApiKeysContract):
    """Each test runs once per backend: ``storage`` is parametrized over them."""
