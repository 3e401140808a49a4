"""Acting on the PostgreSQL server from outside a storage, as an operator or a failover would."""

from __future__ import annotations

import sqlalchemy as sa


def backend_pid(engine: sa.Engine) -> int:
    """The server process of the connection ``engine``'s pool hands out next."""
    with engine.connect() as conn:
        pid: int = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    return pid


def kill_pooled_connection(engine: sa.Engine) -> int:
    """Have the server end the connection ``engine``'s pool holds (a restart, a failover, an
    idle timeout would), unknown to the pool; the ended backend's pid."""
    pid = backend_pid(engine)
    admin = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()
    return pid
