"""The change ledger (inventory_changes) and the idempotency keys of write requests.

Revision ID: 0002
Revises: 0001
Created: 2026-11-24

Additive only: the previous release keeps working on this schema. As in 0001 every
statement says IF NOT EXISTS (or, for the opening entries, ON CONFLICT DO NOTHING), since
on CockroachDB each statement commits on its own.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _timestamp(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    # No foreign key to stores or items: the history of a deleted store or item stays.
    # The key leads with store_id so that the busiest table's inserts spread over every
    # store's range on CockroachDB, and a store's history sits together on SQLite.
    op.create_table(
        "inventory_changes",
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
        sqlite_with_rowid=False,
        if_not_exists=True,
    )
    op.create_index(
        "ix_inventory_changes_store_id_item_id_id",
        "inventory_changes",
        ["store_id", "item_id", "id"],
        if_not_exists=True,
    )
    op.create_index(
        "ix_inventory_changes_store_id_item_id_created_at_id",
        "inventory_changes",
        ["store_id", "item_id", "created_at", "id"],
        if_not_exists=True,
    )
    # Levels that exist already get an opening entry, so that the ledger sums to every
    # level from the start. Its id is the level's rank within its store (1, 2, 3, ...):
    # unique in the (store_id, id) key, and before any id the service mints (those are
    # around 2^47 and more). Deterministic, so running it again inserts nothing twice.
    op.execute(
        "INSERT INTO inventory_changes"
        " (store_id, id, tenant_id, item_id, delta, quantity_after, reason, reference, actor,"
        " created_at)"
        " SELECT store_id, ROW_NUMBER() OVER (PARTITION BY store_id ORDER BY item_id),"
        " tenant_id, item_id, quantity, quantity, 'count', 'opening balance', 'migration',"
        " updated_at"
        " FROM inventory_levels"
        # SQLite would read ON as a join's; a WHERE clause ends the SELECT for it.
        " WHERE 1 = 1"
        " ON CONFLICT (store_id, id) DO NOTHING"
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", sa.Text(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        _timestamp("claimed_at"),
        sa.PrimaryKeyConstraint("tenant_id", "key", name="pk_idempotency_keys"),
        sa.CheckConstraint(
            "state IN ('claimed', 'completed')", name="ck_idempotency_keys_state_known"
        ),
        if_not_exists=True,
    )
    op.create_index(
        "ix_idempotency_keys_claimed_at", "idempotency_keys", ["claimed_at"], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_claimed_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index(
        "ix_inventory_changes_store_id_item_id_created_at_id", table_name="inventory_changes"
    )
    op.drop_index("ix_inventory_changes_store_id_item_id_id", table_name="inventory_changes")
    op.drop_table("inventory_changes")
