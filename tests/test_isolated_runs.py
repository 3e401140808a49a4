"""Test runs are isolated: each makes its own PostgreSQL databases and drops them at exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.backends import RUN_ID, postgres_required, postgres_url, with_driver

ROOT = Path(__file__).resolve().parent.parent

# Opens the PostgreSQL backend the way the suite does, writes a row, prints its database.
_RUN = """
from tests.backends import BACKENDS
from commerce.core.models import NewChain
backend = next(b for b in BACKENDS if b.id == "postgresql")
storage = backend.open()
storage.catalogue.create_tenant("iso", "iso")
storage.catalogue.create_chain("iso", NewChain(name="only mine"))
print(storage.name)
print(storage.engine.url.database)
storage.close()
"""


def _server() -> sa.Engine:
    url = with_driver(postgres_url(), "postgresql+psycopg")
    engine = sa.create_engine(make_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as error:
        engine.dispose()
        if postgres_required():
            pytest.fail(f"PostgreSQL cannot be reached: {error}", pytrace=False)
        pytest.skip("PostgreSQL cannot be reached (set COMMERCE_TEST_POSTGRES_URL)")
    return engine


def _run(run_id: str) -> str:
    result = subprocess.run(  # noqa: S603 - the test's own interpreter and code
        [sys.executable, "-c", _RUN],
        cwd=ROOT,
        env={**os.environ, "COMMERCE_TEST_RUN_ID": run_id},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


def test_each_run_gets_a_database_of_its_own_and_drops_it_at_exit() -> None:
    server = _server()
    try:
        # Run ids of this run's own: two suites started at once must not share them either.
        a, b = f"{RUN_ID}a", f"{RUN_ID}b"
        first, second = _run(a), _run(b)
        assert first != second
        assert f"run_{a}" in first
        assert f"run_{b}" in second
        with server.connect() as conn:
            left = conn.exec_driver_sql(
                "SELECT datname FROM pg_database WHERE datname IN (%(a)s, %(b)s)",
                {"a": first, "b": second},
            ).all()
        assert left == []
    finally:
        server.dispose()
