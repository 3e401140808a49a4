"""Alembic's environment, driven by ``commerce.adapters.storage.sql.schema``: no alembic.ini needed.

Online, the caller hands over a connection in ``config.attributes["connection"]``; offline
(``--sql``), ``config.attributes["url"]`` only names the dialect to write SQL for.
"""

from __future__ import annotations

from alembic import context

config = context.config


def run_offline() -> None:
    context.configure(
        url=config.attributes["url"],
        literal_binds=True,
        transaction_per_migration=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        # Each migration commits on its own, so an interrupted upgrade keeps what it finished.
        transaction_per_migration=True,
    )
    if connection.dialect.name != "sqlite":
        with context.begin_transaction():
            context.run_migrations()
        return
    # SQLite's batch mode rebuilds a table (create, copy, drop, rename), and dropping a table
    # that others refer to fails while foreign keys are enforced. The pragma is ignored inside
    # a transaction, so it is set on the driver's connection before the first one begins;
    # the keys are checked, and enforced again, once the migrations are done.
    driver = connection.connection.driver_connection
    if connection.in_transaction():
        raise RuntimeError("SQLite migrations must start outside a transaction")
    driver.execute("PRAGMA foreign_keys = OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
        broken = driver.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"the migrations left rows without their parents: {broken[:5]}")
    finally:
        driver.execute("PRAGMA foreign_keys = ON")


if context.is_offline_mode():
    run_offline()
else:
    run_online()
