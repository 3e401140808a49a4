"""The initial schema: tenants, chains, stores, items and inventory levels.

Revision ID: 0001
Revises:
Created: 2025-01-01

Every statement says IF NOT EXISTS: on CockroachDB each DDL statement commits on its own,
so an upgrade cut off half-way is finished by running it again.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tenant() -> sa.Column[str]:
    return sa.Column("tenant_id", sa.String(63), nullable=False)


def _timestamp(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        if_not_exists=True,
    )
    op.create_table(
        "chains",
        sa.Column("id", _id(), autoincrement=False, nullable=False),
        _tenant(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_chains"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_chains_tenant_id_tenants"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_chains_tenant_id_id"),
        if_not_exists=True,
    )
    op.create_table(
        "stores",
        sa.Column("id", _id(), autoincrement=False, nullable=False),
        _tenant(),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("postal_code", sa.Text(), nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_stores"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "chain_id"],
            ["chains.tenant_id", "chains.id"],
            name="fk_stores_tenant_id_chain_id_chains",
        ),
        sa.UniqueConstraint("tenant_id", "id", name="uq_stores_tenant_id_id"),
        if_not_exists=True,
    )
    op.create_index("ix_stores_chain_id_id", "stores", ["chain_id", "id"], if_not_exists=True)
    op.create_table(
        "items",
        sa.Column("id", _id(), autoincrement=False, nullable=False),
        _tenant(),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        # Integer cents on SQLite, which has no exact decimal type (see tables.Money).
        sa.Column(
            "cost", sa.Numeric(12, 2).with_variant(sa.BigInteger(), "sqlite"), nullable=False
        ),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_items_tenant_id_tenants"),
        sa.UniqueConstraint("tenant_id", "sku", name="uq_items_tenant_id_sku"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_items_tenant_id_id"),
        if_not_exists=True,
    )
    op.create_table(
        "inventory_levels",
        sa.Column("store_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("item_id", sa.BigInteger(), autoincrement=False, nullable=False),
        _tenant(),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("store_id", "item_id", name="pk_inventory_levels"),
        sa.CheckConstraint("quantity >= 0", name="ck_inventory_levels_quantity_not_negative"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "store_id"],
            ["stores.tenant_id", "stores.id"],
            name="fk_inventory_levels_tenant_id_store_id_stores",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "item_id"],
            ["items.tenant_id", "items.id"],
            name="fk_inventory_levels_tenant_id_item_id_items",
        ),
        sqlite_with_rowid=False,
        if_not_exists=True,
    )
    op.create_index(
        "ix_inventory_levels_item_id_store_id",
        "inventory_levels",
        ["item_id", "store_id"],
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_inventory_levels_item_id_store_id", table_name="inventory_levels")
    op.drop_table("inventory_levels")
    op.drop_table("items")
    op.drop_index("ix_stores_chain_id_id", table_name="stores")
    op.drop_table("stores")
    op.drop_table("chains")
    op.drop_table("tenants")
