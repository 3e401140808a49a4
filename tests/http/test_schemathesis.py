"""Schemathesis, in-process, over every operation of /openapi.json with its default checks.

It drives the WSGI app directly (no server, no network) over memory storage holding the
demo data set, as an admin, so that every operation is reachable: writes as well as reads.
Run alone with ``pytest tests/http/test_schemathesis.py``; ``-s`` prints how many cases ran.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import PositiveDataAcceptanceConfig

from commerce.adapters.storage.memory import memory_storage
from commerce.core import usecases
from commerce.core.auth import Principal, Role
from commerce.core.errors import InvalidInput
from commerce.core.seeding import load_demo
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.http.params import parse_timestamp
from tests.http.conftest import TokenAuthenticator

pytestmark = pytest.mark.http

TENANT = "demo"
TOKEN = "schemathesis-admin"
MAX_EXAMPLES = int(os.environ.get("COMMERCE_TEST_SCHEMATHESIS_EXAMPLES", "25"))
"""Per operation: enough to reach every branch of the schema, few enough that the module runs
in seconds. Raise it for a deeper run: ``COMMERCE_TEST_SCHEMATHESIS_EXAMPLES=500``."""


STORAGE = memory_storage()
usecases.create_tenant(STORAGE.catalogue, TENANT, "Demo")
load_demo(STORAGE.catalogue, STORAGE.inventory, TENANT)
APP = create_app(STORAGE, [TokenAuthenticator({TOKEN: Principal(TENANT, "st", Role.admin)})])
# Schemathesis leaves out the operation that served the document unless a filter names it;
# this one names every path, so /openapi.json is tested too.
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP).include(path_regex="^/")
schema.config.generation.update(max_examples=MAX_EXAMPLES)


@schema.auth()
class Bearer:
    """Credentials for every case, through Schemathesis's auth hook, not as a fixed header,
    so that the cases that leave them out on purpose (expecting a 401) go out without them."""

    def get(self, case: Any, ctx: Any) -> str:
        return TOKEN

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


# A well-formed If-Match naming a version the resource is not at is answered 412, as RFC 9110
# says. Schemathesis draws such tags (it cannot know the current ones), so 412 joins what
# the check accepts for schema-valid data; the check itself stays on, for every other status.
schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
    expected_statuses=[*PositiveDataAcceptanceConfig().expected_statuses, "412"]
)

CASES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    total = sum(CASES.values())
    print(f"\nschemathesis: {total} cases over {len(CASES)} operations")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_conforms_to_the_document(case: Any) -> None:
    if case.meta is not None and case.meta.generation.mode.is_positive:
        _only_what_a_client_could_send(case)
    # Each case stands for a different request, so each gets a fresh key space: two cases
    # that happen to draw the same key would rightly be told 422, which is not the point.
    STORAGE.idempotency.purge_idempotency_keys(datetime.now(UTC) + timedelta(days=1))
    CASES[case.operation.label] += 1
    case.call_and_validate()


def _only_what_a_client_could_send(case: Any) -> None:
    """Drop from a schema-valid case what its schema cannot tell valid from invalid.

    A cursor is a token only the server mints; any other string is rightly a 400
    (tests/http/test_pagination.py covers real ones). ``since`` must be before ``until``,
    which JSON Schema cannot say of two parameters.
    """
    query = case.query
    if not isinstance(query, dict):
        return
    query.pop("cursor", None)
    since, until = query.get("since"), query.get("until")
    if isinstance(since, str) and isinstance(until, str):
        try:
            ordered = parse_timestamp("since", since.upper()) < parse_timestamp(
                "until", until.upper()
            )
        except InvalidInput:
            return
        if not ordered:
            del query["until"]
