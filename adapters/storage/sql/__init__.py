"""SQL storage on SQLAlchemy 2.0 Core: ``sqlite:///``, ``postgresql://``, ``cockroachdb://``.

The plugin opens a ``SqlStore``, hands out the Alembic schema manager and the bulk loader.
Opening does not connect: a database that is down at first becomes reachable later
without a restart, and ``check()`` says why it is not ready meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping

from commerce.adapters.storage.sql.bulk import SqlBulkLoader
from commerce.adapters.storage.sql.engine import SCHEMES, SqlOptions, create_engine, handles
from commerce.adapters.storage.sql.schema import AlembicSchemaManager
from commerce.adapters.storage.sql.store import SqlStore
from commerce.core.ports import CommerceStore
from commerce.plugins import hookimpl

__all__ = ["AlembicSchemaManager", "SqlBulkLoader", "SqlOptions", "SqlStore", "open_sql_store"]


def open_sql_store(url: str, settings: Mapping[str, str] | None = None) -> SqlStore:
    options = SqlOptions.from_settings(settings or {})
    return SqlStore(create_engine(url, options), options)


@hookimpl
def commerce_open_store(url: str, settings: Mapping[str, str]) -> SqlStore | None:
    if not handles(url):
        return None
    return open_sql_store(url, settings)


@hookimpl
def commerce_storage_schemes() -> list[str]:
    return list(SCHEMES)


@hookimpl
def commerce_schema_manager(url: str, settings: Mapping[str, str]) -> AlembicSchemaManager | None:
    if not handles(url):
        return None
    return AlembicSchemaManager(url, SqlOptions.from_settings(settings))


@hookimpl
def commerce_bulk_loader(store: CommerceStore) -> SqlBulkLoader | None:
    return SqlBulkLoader(store) if isinstance(store, SqlStore) else None
