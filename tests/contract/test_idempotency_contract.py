"""The idempotency-records port's contract, run on every backend of ``tests/backends.py``.

The ``storage`` fixture of ``tests/conftest.py`` opens each of those backends in turn.
"""

from __future__ import annotations

import pytest

from tests.contract.idempotency import IdempotencyContract, IdempotencyTransactionContract

pytestmark = pytest.mark.contract


class TestIdempotency(IdempotencyContract):
    """Each test runs once per backend: ``storage`` is parametrized over them."""


class TestIdempotencyTransaction(IdempotencyTransactionContract):
    """The request's transaction, once per backend."""
