"""An index of each store's ledger by time, so ``changes?since=`` starts at ``since``.

Revision ID: 0005
Revises: 0004
Created: 2026-12-10

Additive only: one index, ``inventory_changes (store_id, created_at, id)``, which the previous
release ignores. With ``since``, a store's history is listed in ``(created_at, id)`` order
from this index (with an item, from ``(store_id, item_id, created_at, id)``, which 0002
made), so a long past is never read to reach the recent entries.

The ledger is the biggest table, and building an index over it takes a while:

- On PostgreSQL it is built ``CONCURRENTLY``, so the previous release's writes go on during
  the build (a plain ``CREATE INDEX`` would hold them until it is done). That cannot run
  inside a transaction, so it runs in an autocommit block of its own. A concurrent build cut
  off half-way leaves an invalid index, which ``IF NOT EXISTS`` would take for a finished
  one: running the migration again drops that one first.
- On CockroachDB an index is always built online; the statement says ``IF NOT EXISTS``, as
  every DDL statement commits on its own there.
- The build is exempt from the service's ``statement_timeout`` (``SET statement_timeout =
  0`` around it, on the migration's connection only), which bounds requests, not this.
- SQLite builds it in the migration's transaction, holding the database's write lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import context, op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

NAME = "ix_inventory_changes_store_id_created_at_id"
TABLE = "inventory_changes"
COLUMNS = ["store_id", "created_at", "id"]


def _left_invalid() -> bool:
    """Whether a concurrent build of the index was cut off (offline, it never was)."""
    if context.is_offline_mode():
        return False
    query = sa.text(
        "SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid"
        " WHERE pg_class.relname = :name AND NOT pg_index.indisvalid"
    )
    return op.get_bind().execute(query, {"name": NAME}).first() is not None


@contextmanager
def _no_statement_timeout() -> Iterator[None]:
    """The connection's ``statement_timeout`` lifted for the build, then restored (online
    only: ``--sql`` output is run by hand, under whatever timeout the operator chose)."""
    online = not context.is_offline_mode()
    if online:
        op.execute("SET statement_timeout = 0")
    try:
        yield
    finally:
        if online:
            op.execute("RESET statement_timeout")


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        op.create_index(NAME, TABLE, COLUMNS, if_not_exists=True)
    elif dialect == "postgresql":
        with op.get_context().autocommit_block(), _no_statement_timeout():
            if _left_invalid():
                op.drop_index(NAME, table_name=TABLE, postgresql_concurrently=True)
            op.create_index(NAME, TABLE, COLUMNS, postgresql_concurrently=True, if_not_exists=True)
    else:  # CockroachDB: online by itself, every statement committing on its own
        with _no_statement_timeout():
            op.create_index(NAME, TABLE, COLUMNS, if_not_exists=True)


def downgrade() -> None:
    op.drop_index(NAME, table_name=TABLE)
