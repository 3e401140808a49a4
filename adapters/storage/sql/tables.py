"""The SQL schema as SQLAlchemy Core tables: what queries use and what the migrations must build.

The migrations under ``migrations/versions`` own the database; these tables are the
models they are checked against (a test upgrades an empty database and compares).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

MONEY_PRECISION = 12
MONEY_SCALE = 2
CENTS = Decimal(1).scaleb(-MONEY_SCALE)

# Constraint names are fixed so that migrations, error translation and the docs agree.
# The CHECKs are a safety net under the use cases' validation (migration 0004 adds most).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware timestamp that always comes back in UTC.

    PostgreSQL and CockroachDB store ``TIMESTAMPTZ``; SQLite has no such type, so the value
    is stored as naive UTC text and given its zone back on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        # SQLite hands back the text SQLAlchemy wrote (``YYYY-MM-DD HH:MM:SS.ffffff``): read in
        # one step rather than parsed by the dialect's type and then given its zone, three
        # calls per value (a read of ten levels converts ten).
        parse = datetime.fromisoformat

        def process(value: str | None) -> datetime | None:
            if value is None:
                return None
            return parse(value).replace(tzinfo=UTC)

        return process


class Money(sa.TypeDecorator[Decimal]):
    """Exact money with two decimal places: ``NUMERIC(12, 2)``, or integer cents on SQLite.

    SQLite has no decimal type: a ``NUMERIC`` column there turns ``12.10`` into a binary
    float. Whole cents in an integer column are exact, and still add up in SQL.
    """

    impl = sa.Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Decimal | int | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return int(value.scaleb(MONEY_SCALE))
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-MONEY_SCALE)
        return Decimal(value).quantize(CENTS)


def _id() -> sa.types.TypeEngine[int]:
    # On SQLite an INTEGER PRIMARY KEY is the rowid itself: lookups by id skip an index.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(63), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # SQLite does not enforce VARCHAR(63) by itself.
    sa.CheckConstraint("length(id) BETWEEN 1 AND 63", name="id_length"),
)

chains = sa.Table(
    "chains",
    metadata,
    sa.Column("id", _id(), primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.String(63), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("phone", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # Lists a tenant's chains by id, and lets stores name (tenant, chain) in one foreign key.
    sa.UniqueConstraint("tenant_id", "id"),
)

stores = sa.Table(
    "stores",
    metadata,
    sa.Column("id", _id(), primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.String(63), nullable=False),
    sa.Column("chain_id", sa.BigInteger(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("phone", sa.Text(), nullable=False),
    sa.Column("address", sa.Text(), nullable=False),
    sa.Column("postal_code", sa.Text(), nullable=False),
    sa.Column("city", sa.Text(), nullable=False),
    sa.Column("country", sa.Text(), nullable=False),
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # A store's tenant is its chain's tenant: the database, not only the code, says so.
    sa.ForeignKeyConstraint(["tenant_id", "chain_id"], ["chains.tenant_id", "chains.id"]),
    sa.UniqueConstraint("tenant_id", "id"),
    sa.Index(None, "chain_id", "id"),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", _id(), primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.String(63), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("sku", sa.Text(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("cost", Money(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("tenant_id", "sku"),
    sa.UniqueConstraint("tenant_id", "id"),
    sa.CheckConstraint("cost >= 0", name="cost_not_negative"),
    sa.CheckConstraint("sku <> ''", name="sku_not_empty"),
)

inventory_levels = sa.Table(
    "inventory_levels",
    metadata,
    sa.Column("store_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("item_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.String(63), nullable=False),
    sa.Column("quantity", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint("quantity >= 0", name="quantity_not_negative"),
    # Both foreign keys carry the tenant: a level can never join one tenant's store to
    # another tenant's item.
    sa.ForeignKeyConstraint(["tenant_id", "store_id"], ["stores.tenant_id", "stores.id"]),
    sa.ForeignKeyConstraint(["tenant_id", "item_id"], ["items.tenant_id", "items.id"]),
    sa.Index(None, "item_id", "store_id"),
    # Clustered by (store_id, item_id) on SQLite, as a store's levels are read together.
    sqlite_with_rowid=False,
)

inventory_changes = sa.Table(
    "inventory_changes",
    metadata,
    # Keyed by (store_id, id): a store's history is one key range (listing it is a range
    # scan), and on CockroachDB the busiest table's inserts spread over every store's range
    # instead of all landing on the newest id.
    sa.Column("store_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.String(63), nullable=False),
    sa.Column("item_id", sa.BigInteger(), nullable=False),
    sa.Column("delta", sa.BigInteger(), nullable=False),
    sa.Column("quantity_after", sa.BigInteger(), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("reference", sa.Text(), nullable=True),
    sa.Column("actor", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint("quantity_after >= 0", name="quantity_after_not_negative"),
    # An adjustment changes something; only a count may find what was there (delta 0).
    sa.CheckConstraint("delta <> 0 OR reason = 'count'", name="delta_not_zero"),
    # Every entry starts from a level that was not negative either.
    sa.CheckConstraint("quantity_after - delta >= 0", name="quantity_before_not_negative"),
    # No foreign keys: the history of a deleted store or item is kept.
    # One item's history at a store, in id order (GET …/changes?item_id=).
    sa.Index(None, "store_id", "item_id", "id"),
    # The last entry of an item at or before a moment: one seek, backwards (as-of levels);
    # and an item's history from a moment on, in time order (…/changes?item_id=&since=).
    sa.Index(None, "store_id", "item_id", "created_at", "id"),
    # A store's history from a moment on, in time order (…/changes?since=, migration 0005).
    sa.Index(None, "store_id", "created_at", "id"),
    sqlite_with_rowid=False,
)

IDEMPOTENCY_STATES = ("claimed", "completed")

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant_id", sa.String(63), primary_key=True),
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("fingerprint", sa.Text(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("response_status", sa.Integer(), nullable=True),
    # The response's headers as a JSON array of [name, value] pairs, in their order.
    sa.Column("response_headers", sa.Text(), nullable=True),
    sa.Column("response_body", sa.LargeBinary(), nullable=True),
    sa.Column("claimed_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint("state IN ('claimed', 'completed')", name="state_known"),
    # Purging old keys is a range scan on this index, not a pass over the table.
    sa.Index(None, "claimed_at"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", _id(), primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.String(63), sa.ForeignKey("tenants.id"), nullable=False),
    # Public: how a presented key finds its row, one unique-index seek per lookup.
    sa.Column("prefix", sa.String(16), nullable=False),
    # The hex SHA-256 of the key's secret; the secret itself is never stored.
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Column("last_used_at", UtcDateTime(), nullable=True),
    sa.CheckConstraint("\"role\" IN ('reader', 'writer', 'admin')", name="role_known"),
    sa.UniqueConstraint("prefix"),
    # Lists a tenant's keys in id order.
    sa.Index(None, "tenant_id", "id"),
)
