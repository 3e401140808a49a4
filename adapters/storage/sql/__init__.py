"""SQL storage on SQLAlchemy 2.0 Core: ``sqlite:///``, ``postgresql://``, ``cockroachdb://``.

The plugin describes one storage backend: it opens a ``SqlStorage`` bundle (one module per
port: ``catalogue``, ``inventory`` with ``ledger``, ``idempotency``, ``api_keys``, sharing
``common.SqlContext``), and hands out the Alembic schema manager and the bulk loader.
Opening does not connect: a database that is down at first becomes reachable later
without a restart, and ``check()`` says why it is not ready meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping

from commerce.adapters.storage.sql.bulk import SqlBulkLoader
from commerce.adapters.storage.sql.engine import SCHEMES, SqlOptions, create_engine
from commerce.adapters.storage.sql.schema import AlembicSchemaManager
from commerce.adapters.storage.sql.storage import SqlStorage, sql_storage
from commerce.core.ports import Storage
from commerce.plugins import StorageBackend, hookimpl

__all__ = [
    "AlembicSchemaManager",
    "SqlBulkLoader",
    "SqlOptions",
    "SqlStorage",
    "open_sql_storage",
    "sql_storage",
]


def open_sql_storage(url: str, settings: Mapping[str, str] | None = None) -> SqlStorage:
    """The storage for ``url``, with the ``db_*`` settings (``COMMERCE_DB_*``) applied."""
    options = SqlOptions.from_settings(settings or {})
    return sql_storage(create_engine(url, options), options)


def _schema_manager(url: str, settings: Mapping[str, str]) -> AlembicSchemaManager:
    return AlembicSchemaManager(url, SqlOptions.from_settings(settings))


def _bulk_loader(storage: Storage) -> SqlBulkLoader | None:
    return SqlBulkLoader(storage) if isinstance(storage, SqlStorage) else None


@hookimpl
def commerce_storage_backends() -> list[StorageBackend]:
    return [
        StorageBackend(
            name="sql",
            schemes=SCHEMES,
            open=open_sql_storage,
            schema_manager=_schema_manager,
            bulk_loader=_bulk_loader,
            description="SQLite, PostgreSQL and CockroachDB through SQLAlchemy; Alembic migrations",
        )
    ]
