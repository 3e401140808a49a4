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
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
