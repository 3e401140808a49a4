"""``SqlApiKeys``: the ``ApiKeys`` port on SQL; only the digest of a key's secret is stored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

import sqlalchemy as sa

from commerce.adapters.storage.sql.common import SqlContext, execute, tenant_exists
from commerce.adapters.storage.sql.tables import api_keys
from commerce.core.apikeys import ApiKey
from commerce.core.auth import Role
from commerce.core.errors import ApiKeyPrefixTaken, CommerceError, NotFound

_API_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.tenant_id,
    api_keys.c.prefix,
    api_keys.c.role,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
    api_keys.c.last_used_at,
)


class SqlApiKeys:
    def __init__(self, ctx: SqlContext) -> None:
        self._ctx = ctx

    def create_api_key(self, tenant: str, role: Role, prefix: str, secret_hash: str) -> ApiKey:
        now = self._ctx.clock()
        values = {
            "tenant_id": tenant,
            "prefix": prefix,
            "secret_hash": secret_hash,
            "role": role.name,
            "created_at": now,
        }
        prefix_query = sa.select(api_keys.c.id).where(api_keys.c.prefix == prefix)

        def explain(conn: sa.Connection) -> CommerceError | None:
            if not tenant_exists(conn, tenant):
                return NotFound("tenant", tenant)
            if conn.execute(prefix_query).first() is not None:
                return ApiKeyPrefixTaken()
            return None

        key_id = self._ctx.insert_with_new_id(api_keys, values, explain)
        return ApiKey(id=key_id, tenant=tenant, prefix=prefix, role=role, created_at=now)

    def list_api_keys(self, tenant: str) -> Sequence[ApiKey]:
        query = (
            sa.select(*_API_KEY_COLUMNS)
            .where(api_keys.c.tenant_id == tenant)
            .order_by(api_keys.c.id)
        )
        return [_api_key(row) for row in self._ctx.all(query)]

    def revoke_api_key(self, key_id: int) -> ApiKey:
        now = self._ctx.clock()
        revoke = (
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        query = sa.select(*_API_KEY_COLUMNS).where(api_keys.c.id == key_id)

        def work(conn: sa.Connection) -> sa.Row[Any] | None:
            conn.execute(revoke)
            return conn.execute(query).first()

        row = self._ctx.tx.write(work)
        if row is None:
            raise NotFound("API key", key_id)
        return _api_key(row)

    def find_api_key(self, prefix: str) -> tuple[ApiKey, str] | None:
        query = sa.select(*_API_KEY_COLUMNS, api_keys.c.secret_hash).where(
            api_keys.c.prefix == prefix
        )
        row = self._ctx.first(query)
        return None if row is None else (_api_key(row), row.secret_hash)

    def touch_api_key(self, key_id: int, at: datetime) -> None:
        last = api_keys.c.last_used_at
        statement = (
            api_keys.update()
            .where(api_keys.c.id == key_id, sa.or_(last.is_(None), last < at))
            .values(last_used_at=at)
        )
        self._ctx.tx.write(partial(execute, statement))


def _api_key(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant=row.tenant_id,
        prefix=row.prefix,
        role=Role[row.role],
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )
