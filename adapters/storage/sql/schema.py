"""The schema manager: Alembic, driven from code, over the migrations shipped in this package."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import exc

from commerce.adapters.storage.sql.engine import (
    UNDEFINED_TABLE,
    SqlOptions,
    create_engine,
    normalize_url,
    sqlstate,
    translate,
)
from commerce.core.events import LogEvent, event_log

MIGRATIONS = Path(__file__).parent / "migrations"

log = event_log(__name__)


@dataclass(frozen=True, slots=True)
class Migrations:
    head: str
    known: frozenset[str]


@functools.cache
def migrations() -> Migrations:
    """The newest revision this version knows, and every revision it knows."""
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found under {MIGRATIONS}")
    known = frozenset(rev.revision for rev in script.walk_revisions())
    return Migrations(head=head, known=known)


def read_revision(conn: sa.Connection) -> str | None:
    """The revision a database is at; ``None`` when it has never been migrated."""
    try:
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except (exc.ProgrammingError, exc.OperationalError) as error:
        if sqlstate(error) == UNDEFINED_TABLE or "no such table" in str(error.orig):
            return None
        raise


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


class AlembicSchemaManager:
    """Applies and reports migrations for one database URL."""

    def __init__(self, url: str, options: SqlOptions | None = None) -> None:
        self.url = url
        self.options = options or SqlOptions()

    def upgrade(self) -> str:
        engine = create_engine(self.url, self.options)
        try:
            with engine.connect() as conn:
                if engine.dialect.name == "cockroachdb":
                    # CockroachDB wants schema changes outside explicit transactions: every
                    # DDL statement commits alone (the migrations say IF NOT EXISTS for that).
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                before = read_revision(conn)
                if conn.in_transaction():
                    conn.commit()
                if before is not None and before not in migrations().known:
                    # A newer release migrated it (a rollback runs the older one's upgrade
                    # step again): expand-only migrations keep the schema good for this
                    # release, so there is nothing to do, and nothing this release could do.
                    return before
                config = _config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                if conn.in_transaction():
                    conn.commit()
                revision = read_revision(conn)
                if conn.in_transaction():
                    conn.commit()
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise (translate(error) or error) from error
        finally:
            engine.dispose()
        if revision != before:
            log(
                LogEvent.MIGRATION_APPLIED,
                "schema migrated from %s to %s",
                before or "nothing",
                revision,
                revision_from=before,
                revision_to=revision,
            )
        return revision or migrations().head

    def current(self) -> str | None:
        engine = create_engine(self.url, self.options)
        try:
            with engine.connect() as conn:
                return read_revision(conn)
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise (translate(error) or error) from error
        finally:
            engine.dispose()

    def head(self) -> str:
        return migrations().head

    def upgrade_sql(self) -> str:
        """What ``upgrade`` runs on an empty database, in this URL's dialect, offline."""
        buffer = io.StringIO()
        config = Config(output_buffer=buffer)
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["url"] = normalize_url(self.url)
        command.upgrade(config, "head", sql=True)
        dialect = config.attributes["url"].get_backend_name()
        header = (
            f"-- The commerce schema for {dialect}, at revision {migrations().head}.\n"
            "-- Generated from the migrations by `commerce db upgrade --sql`; do not edit.\n"
            "-- Running it by hand leaves the database where `commerce db upgrade` would.\n"
        )
        return header + buffer.getvalue()
