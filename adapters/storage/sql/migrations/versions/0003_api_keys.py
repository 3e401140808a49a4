"""API keys: a tenant's credentials, stored as the digest of their secret only.

Revision ID: 0003
Revises: 0002
Created: 2026-11-24

Additive only: the previous release keeps working on this schema. As in 0001 and 0002
every statement says IF NOT EXISTS, since on CockroachDB each statement commits on its own.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        _timestamp("created_at"),
        _timestamp("revoked_at", nullable=True),
        _timestamp("last_used_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_api_keys_tenant_id_tenants"
        ),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
        sa.CheckConstraint(
            "\"role\" IN ('reader', 'writer', 'admin')", name="ck_api_keys_role_known"
        ),
        if_not_exists=True,
    )
    op.create_index("ix_api_keys_tenant_id_id", "api_keys", ["tenant_id", "id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_api_keys_tenant_id_id", table_name="api_keys")
    op.drop_table("api_keys")
