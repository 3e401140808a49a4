"""CHECK constraints as a safety net: what the use cases validate, the database refuses too.

Revision ID: 0004
Revises: 0003
Created: 2026-12-03

Every row the service ever wrote already satisfies them (they state the validation rules of
every release so far), so adding them changes no data and the previous release keeps
working on this schema. Each one is a single statement; on CockroachDB, where each
statement commits on its own, one already there is skipped, so an upgrade cut off half-way
is finished by running it again.

SQLite cannot add a constraint to a table: batch mode rebuilds each table with its new
constraints instead (the migration environment turns foreign keys off meanwhile, as a
rebuild drops a table that others refer to). It rebuilds from the tables as 0001 to 0003
made them, written out below, rather than from reflection: SQLite's reflection loses
``WITHOUT ROWID``, and ``--sql`` has no database to reflect.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import context, op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

CHECKS = (
    # A tenant id is 1 to 63 characters; SQLite does not enforce VARCHAR(63) by itself.
    ("tenants", "ck_tenants_id_length", "length(id) BETWEEN 1 AND 63"),
    ("items", "ck_items_cost_not_negative", "cost >= 0"),
    ("items", "ck_items_sku_not_empty", "sku <> ''"),
    # An adjustment changes something; only a count may find what was there (delta 0).
    ("inventory_changes", "ck_inventory_changes_delta_not_zero", "delta <> 0 OR reason = 'count'"),
    # Every entry starts from a level that was not negative either.
    (
        "inventory_changes",
        "ck_inventory_changes_quantity_before_not_negative",
        "quantity_after - delta >= 0",
    ),
)


def _timestamp(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _sqlite_tables_at_0003() -> list[sa.Table]:
    """The tables this migration changes, exactly as 0001 to 0003 made them on SQLite."""
    metadata = sa.MetaData()
    return [
        sa.Table(
            "tenants",
            metadata,
            sa.Column("id", sa.String(63), nullable=False),
            sa.Column("name", sa.Text(), nullable=False),
            _timestamp("created_at"),
            sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        ),
        sa.Table(
            "items",
            metadata,
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("tenant_id", sa.String(63), nullable=False),
            sa.Column("sku", sa.Text(), nullable=False),
            sa.Column("name", sa.Text(), nullable=False),
            sa.Column("cost", sa.BigInteger(), nullable=False),
            _timestamp("created_at"),
            _timestamp("updated_at"),
            sa.PrimaryKeyConstraint("id", name="pk_items"),
            sa.ForeignKeyConstraint(
                ["tenant_id"], ["tenants.id"], name="fk_items_tenant_id_tenants"
            ),
            sa.UniqueConstraint("tenant_id", "sku", name="uq_items_tenant_id_sku"),
            sa.UniqueConstraint("tenant_id", "id", name="uq_items_tenant_id_id"),
        ),
        sa.Table(
            "inventory_changes",
            metadata,
            sa.Column("store_id", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("tenant_id", sa.String(63), nullable=False),
            sa.Column("item_id", sa.BigInteger(), nullable=False),
            sa.Column("delta", sa.BigInteger(), nullable=False),
            sa.Column("quantity_after", sa.BigInteger(), nullable=False),
            sa.Column("reason", sa.String(32), nullable=False),
            sa.Column("reference", sa.Text(), nullable=True),
            sa.Column("actor", sa.Text(), nullable=False),
            _timestamp("created_at"),
            sa.PrimaryKeyConstraint("store_id", "id", name="pk_inventory_changes"),
            sa.CheckConstraint(
                "quantity_after >= 0", name="ck_inventory_changes_quantity_after_not_negative"
            ),
            sa.Index("ix_inventory_changes_store_id_item_id_id", "store_id", "item_id", "id"),
            sa.Index(
                "ix_inventory_changes_store_id_item_id_created_at_id",
                "store_id",
                "item_id",
                "created_at",
                "id",
            ),
            sqlite_with_rowid=False,
        ),
    ]


def _exists(table: str, name: str) -> bool:
    """Whether the constraint is there already (offline, for ``--sql``, it never is)."""
    if context.is_offline_mode():
        return False
    query = sa.text(
        "SELECT 1 FROM information_schema.table_constraints"
        " WHERE table_schema = current_schema() AND table_name = :t AND constraint_name = :n"
    )
    return op.get_bind().execute(query, {"t": table, "n": name}).first() is not None


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for before in _sqlite_tables_at_0003():
            with op.batch_alter_table(before.name, copy_from=before, recreate="always") as batch:
                for _, name, condition in (c for c in CHECKS if c[0] == before.name):
                    batch.create_check_constraint(name, sa.text(condition))
        return
    for table, name, condition in CHECKS:
        if not _exists(table, name):
            op.create_check_constraint(name, table, sa.text(condition))


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        # Rebuilt as they were: without the constraints this migration added.
        for before in _sqlite_tables_at_0003():
            with op.batch_alter_table(before.name, copy_from=before, recreate="always"):
                pass
        return
    for table, name, _ in reversed(CHECKS):
        op.drop_constraint(name, table, type_="check")
